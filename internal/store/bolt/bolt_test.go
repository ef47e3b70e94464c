package bolt

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/internal/store"
	"github.com/godwit-project/godwit/internal/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Store(t, func(t *testing.T) *Store {
		s, err := Open(filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestFileLockAndReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	type rec struct{ N int }
	if err := store.PutJSON(ctx, s, "vms", "b", rec{7}); err != nil {
		t.Fatal(err)
	}
	// A second opener is refused with a message that says why.
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second Open: %v, want a lock error", err)
	}
	// Values survive a reopen.
	s.Close()
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if r, err := store.GetJSON[rec](ctx, s2, "vms", "b"); err != nil || r.N != 7 {
		t.Fatalf("after reopen: %v %v", r, err)
	}
}
