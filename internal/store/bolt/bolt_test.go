package bolt

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// A Switch keeps the contract, and its Replace runs with no call under
// way: what the old store held when the move ran is all there is.
func TestSwitch(t *testing.T) {
	storetest.Store(t, func(t *testing.T) *store.Switch {
		s, err := Open(filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		sw := store.NewSwitch(s)
		t.Cleanup(func() { sw.Close() })
		return sw
	})
	ctx := context.Background()
	a, err := Open(filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	sw := store.NewSwitch(a)
	defer sw.Close()
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			if err := sw.Put(ctx, "w", fmt.Sprintf("k%06d", n), []byte("x")); err != nil {
				t.Error(err)
			}
			n++
		}
	}()
	time.Sleep(20 * time.Millisecond)
	var moved int
	if err := sw.Replace(func(old store.Store) (store.Store, error) {
		kvs, err := old.List(ctx, "w")
		for _, kv := range kvs {
			if err := b.Put(ctx, "w", kv.Key, kv.Value); err != nil {
				return nil, err
			}
		}
		moved = len(kvs)
		return b, err
	}); err != nil {
		t.Fatal(err)
	}
	close(stop)
	written := <-done
	kvs, err := b.List(ctx, "w")
	if err != nil || len(kvs) != written {
		t.Fatalf("after the switch the new store holds %d keys (%v); %d were written, %d moved", len(kvs), err, written, moved)
	}
	if sw.Current() != store.Store(b) {
		t.Fatal("Current is not the new store")
	}
	if names, err := a.Buckets(ctx); err != nil || len(names) != 1 || names[0] != "w" {
		t.Fatalf("buckets of a: %v %v", names, err)
	}
	if err := sw.Replace(func(store.Store) (store.Store, error) { return nil, fmt.Errorf("no") }); err == nil || sw.Current() != store.Store(b) {
		t.Fatal("a failed Replace changed the store")
	}
}

// Concurrent writes share commits (Batch) and each still gets its own
// answer: 64 puts and deletes at once, half the deletes of keys that are
// not there (their ErrNotFound must not fail the others in their batch),
// then every put is there, after a reopen too, and every delete did
// what it says.
func TestConcurrentWritesBatch(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 32; i++ {
		if err := s.Put(ctx, "vms", fmt.Sprintf("old-%02d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 128)
	for i := 0; i < 64; i++ {
		go func() { errs <- s.Put(ctx, "vms", fmt.Sprintf("new-%02d", i), []byte(fmt.Sprint(i))) }()
		go func() {
			key := fmt.Sprintf("old-%02d", i) // 32..63 are not there
			err := s.Delete(ctx, "vms", key)
			if want := i >= 32; want != (err == store.ErrNotFound) {
				err = fmt.Errorf("delete %s: %v", key, err)
			} else {
				err = nil
			}
			errs <- err
		}()
	}
	for i := 0; i < 128; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kvs, err := s.List(ctx, "vms")
	if err != nil {
		t.Fatal(err)
	}
	if len(kvs) != 64 {
		t.Fatalf("%d keys after the writes, want the 64 puts only", len(kvs))
	}
	for i, kv := range kvs {
		if kv.Key != fmt.Sprintf("new-%02d", i) || string(kv.Value) != fmt.Sprint(i) {
			t.Fatalf("key %d: %s=%q", i, kv.Key, kv.Value)
		}
	}
}
