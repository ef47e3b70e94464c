package bolt

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/internal/store"
)

func TestStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	if _, err := s.Get(ctx, "vms", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get on a new store: %v, want ErrNotFound", err)
	}
	if kvs, err := s.List(ctx, "vms"); err != nil || len(kvs) != 0 {
		t.Fatalf("List on a new bucket: %v %v", kvs, err)
	}
	type rec struct{ N int }
	for i, k := range []string{"b", "a", "c"} {
		if err := store.PutJSON(ctx, s, "vms", k, rec{i}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := store.ListJSON[rec](ctx, s, "vms")
	if err != nil || len(got) != 3 || got[0].N != 1 || got[1].N != 0 || got[2].N != 2 {
		t.Fatalf("ListJSON = %v, %v (want key order a b c)", got, err)
	}
	if r, err := store.GetJSON[rec](ctx, s, "vms", "c"); err != nil || r.N != 2 {
		t.Fatalf("GetJSON = %v, %v", r, err)
	}
	if err := s.Delete(ctx, "vms", "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "vms", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
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
	if r, err := store.GetJSON[rec](ctx, s2, "vms", "b"); err != nil || r.N != 0 {
		t.Fatalf("after reopen: %v %v", r, err)
	}
}
