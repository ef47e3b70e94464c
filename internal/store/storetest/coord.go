package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/internal/store"
)

// Coord runs the store.Coord contract (and the Store one on it).
func Coord[S store.Coord](t *testing.T, open Opener[S]) {
	Store(t, open)
	t.Run("Revisions", func(t *testing.T) { testRevisions(t, open(t)) })
	t.Run("CompareAndSwap", func(t *testing.T) { testCAS(t, open(t)) })
	t.Run("TxnIsAtomic", func(t *testing.T) { testTxnAtomic(t, open(t)) })
	t.Run("FencingToken", func(t *testing.T) { testFencing(t, open(t)) })
	t.Run("LeaseExpiresWithItsHolder", func(t *testing.T) { testLeaseExpiry(t, open(t), open(t)) })
	t.Run("LeaseRenewedFromItsSend", func(t *testing.T) { testLeaseRenewed(t, open(t)) })
	t.Run("WatchOrder", func(t *testing.T) { testWatchOrder(t, open(t)) })
	t.Run("WatchResume", func(t *testing.T) { testWatchResume(t, open(t)) })
	t.Run("ListThenWatch", func(t *testing.T) { testListThenWatch(t, open(t), open(t)) })
}

// Bounded is a context for one step of a test.
func Bounded(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func testRevisions(t *testing.T, s store.Coord) {
	ctx := Bounded(t, 10*time.Second)
	b := bucket(t, "b")
	if _, err := s.GetItem(ctx, b, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetItem of a missing key: %v", err)
	}
	if err := s.Put(ctx, b, "k", []byte("1")); err != nil {
		t.Fatal(err)
	}
	a, err := s.GetItem(ctx, b, "k")
	if err != nil || a.Rev <= 0 || string(a.Value) != "1" || a.Key != "k" {
		t.Fatalf("GetItem = %+v, %v", a, err)
	}
	if err := s.Put(ctx, b, "other", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.GetItem(ctx, b, "k"); again.Rev != a.Rev {
		t.Fatalf("a write to another key moved k from %d to %d", a.Rev, again.Rev)
	}
	if err := s.Put(ctx, b, "k", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.GetItem(ctx, b, "k"); c.Rev <= a.Rev {
		t.Fatalf("rewrite kept revision %d (was %d)", c.Rev, a.Rev)
	}
}

func testCAS(t *testing.T, s store.Coord) {
	ctx := Bounded(t, 10*time.Second)
	b := bucket(t, "b")
	r1, err := store.PutIf(ctx, s, b, "k", []byte("first"), 0)
	if err != nil || r1 <= 0 {
		t.Fatalf("PutIf absent: %d %v", r1, err)
	}
	// Create-if-absent loses against an existing key, and says so.
	_, err = store.PutIf(ctx, s, b, "k", []byte("second"), 0)
	var ce *store.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, store.ErrConflict) || ce.Actual != r1 {
		t.Fatalf("PutIf absent on an existing key: %v, want a conflict at %d", err, r1)
	}
	if !strings.Contains(err.Error(), b+"/k") {
		t.Errorf("conflict %q does not name the key", err)
	}
	r2, err := store.PutIf(ctx, s, b, "k", []byte("second"), r1)
	if err != nil || r2 <= r1 {
		t.Fatalf("PutIf at the current revision: %d %v", r2, err)
	}
	// A stale token (r1) is refused and changes nothing.
	if _, err := store.PutIf(ctx, s, b, "k", []byte("stale"), r1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutIf with a stale revision: %v, want ErrConflict", err)
	}
	if it, _ := s.GetItem(ctx, b, "k"); string(it.Value) != "second" || it.Rev != r2 {
		t.Fatalf("after a refused PutIf: %+v", it)
	}
	if err := store.DeleteIf(ctx, s, b, "k", r1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("DeleteIf with a stale revision: %v", err)
	}
	if err := store.DeleteIf(ctx, s, b, "k", r2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, b, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after DeleteIf: %v", err)
	}
	if err := store.DeleteIf(ctx, s, b, "k", r2); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("DeleteIf of a deleted key: %v, want ErrConflict", err)
	}
}

func testTxnAtomic(t *testing.T, s store.Coord) {
	ctx := Bounded(t, 10*time.Second)
	b := bucket(t, "b")
	guard, err := store.PutIf(ctx, s, b, "guard", []byte("g"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, b, "gone", []byte("x")); err != nil {
		t.Fatal(err)
	}
	both := []store.Op{{Bucket: b, Key: "x", Value: []byte("1")}, {Bucket: b, Key: "y", Value: []byte("2")}, {Bucket: b, Key: "gone", Delete: true}}
	// One failing guard among good ones: nothing is written.
	_, err = s.Txn(ctx, store.Txn{If: []store.Guard{{Bucket: b, Key: "guard", Rev: guard}, {Bucket: b, Key: "x", Rev: 0}, {Bucket: b, Key: "guard", Rev: guard + 100}}, Then: both})
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Guard.Rev != guard+100 || ce.Actual != guard {
		t.Fatalf("Txn with a failing third guard: %v, want a conflict naming it", err)
	}
	for _, k := range []string{"x", "y"} {
		if _, err := s.Get(ctx, b, k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a failed Txn wrote %s: %v", k, err)
		}
	}
	if _, err := s.Get(ctx, b, "gone"); err != nil {
		t.Fatalf("a failed Txn deleted: %v", err)
	}
	rev, err := s.Txn(ctx, store.Txn{If: []store.Guard{{Bucket: b, Key: "guard", Rev: guard}, {Bucket: b, Key: "x"}}, Then: both})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"x", "y"} {
		if it, err := s.GetItem(ctx, b, k); err != nil || it.Rev != rev {
			t.Fatalf("%s after Txn: %+v %v, want revision %d", k, it, err, rev)
		}
	}
	if _, err := s.Get(ctx, b, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Txn did not delete: %v", err)
	}
}

// testLeaseRenewed: a lease says when its last renewal was sent (the
// grant's, at first), no later than the store renewed it, and it moves on
// while the lease is kept; a revoked lease is Done.
func testLeaseRenewed(t *testing.T, s store.Coord) {
	ctx := Bounded(t, 20*time.Second)
	before := time.Now()
	l, err := s.Grant(ctx, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r := l.Renewed(); r.Before(before) || r.After(time.Now()) {
		t.Fatalf("a new lease was renewed at %s, not between %s and now", r, before)
	}
	first := l.Renewed()
	for deadline := time.Now().Add(5 * time.Second); !l.Renewed().After(first); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a lease of 3s kept alive was not renewed within 5s")
		}
	}
	if err := l.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	default:
		t.Fatal("a revoked lease is not Done")
	}
}

// testFencing: ownership written under a lease is the token that guards
// later writes; a stale token or a gone lease is refused.
func testFencing(t *testing.T, s store.Coord) {
	ctx := Bounded(t, 20*time.Second)
	b := bucket(t, "owners")
	data := bucket(t, "vms")
	l, err := s.Grant(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	own := func(lease store.LeaseID) (int64, error) {
		return s.Txn(ctx, store.Txn{If: []store.Guard{{Bucket: b, Key: "web1"}},
			Then: []store.Op{{Bucket: b, Key: "web1", Value: []byte("host-a"), Lease: lease}}})
	}
	token, err := own(l.ID())
	if err != nil {
		t.Fatal(err)
	}
	if it, _ := s.GetItem(ctx, b, "web1"); it.Lease != l.ID() {
		t.Fatalf("owner record lease = %x, want %x", it.Lease, l.ID())
	}
	write := func(v string) error {
		_, err := s.Txn(ctx, store.Txn{If: []store.Guard{{Bucket: b, Key: "web1", Rev: token}},
			Then: []store.Op{{Bucket: data, Key: "web1", Value: []byte(v)}}})
		return err
	}
	if err := write("v1"); err != nil {
		t.Fatalf("write under a live token: %v", err)
	}
	// The same key under no lease (someone took it over): the old token
	// no longer guards.
	if _, err := store.PutIf(ctx, s, b, "web1", []byte("host-b"), token); err != nil {
		t.Fatal(err)
	}
	if err := write("v2"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("write under a stale token: %v, want ErrConflict", err)
	}
	if v, _ := s.Get(ctx, data, "web1"); string(v) != "v1" {
		t.Fatalf("a fenced write landed: %q", v)
	}
	if err := s.Delete(ctx, b, "web1"); err != nil {
		t.Fatal(err)
	}
	// Revoked: the lease's keys go, and nothing more attaches to it.
	if token, err = own(l.ID()); err != nil {
		t.Fatal(err)
	}
	if err := l.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after Revoke")
	}
	if _, err := s.Get(ctx, b, "web1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a key of a revoked lease survived: %v", err)
	}
	if err := write("v3"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("write under a revoked lease's token: %v, want ErrConflict", err)
	}
	if _, err := own(l.ID()); !errors.Is(err, store.ErrLeaseGone) {
		t.Fatalf("put attached to a revoked lease: %v, want ErrLeaseGone", err)
	}
}

// testLeaseExpiry: a host that dies (its handle closes without revoking)
// loses its lease after the TTL; its keys go and its token stops working.
func testLeaseExpiry(t *testing.T, s, other store.Coord) {
	ctx := Bounded(t, 20*time.Second)
	b := bucket(t, "owners")
	l, err := other.Grant(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	token, err := other.Txn(ctx, store.Txn{If: []store.Guard{{Bucket: b, Key: "web1"}},
		Then: []store.Op{{Bucket: b, Key: "web1", Value: []byte("dying"), Lease: l.ID()}}})
	if err != nil {
		t.Fatal(err)
	}
	// Kept alive past its TTL while the holder lives.
	time.Sleep(l.TTL() + 500*time.Millisecond)
	if _, err := s.Get(ctx, b, "web1"); err != nil {
		t.Fatalf("a kept-alive lease's key is gone after its TTL: %v", err)
	}
	other.Close()
	select {
	case <-l.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed when the handle closed")
	}
	if _, err := s.Get(ctx, b, "web1"); err != nil {
		t.Fatalf("closing the handle revoked the lease at once (%v); it must run out", err)
	}
	deadline := time.Now().Add(l.TTL() + 5*time.Second)
	for {
		_, err := s.Get(ctx, b, "web1")
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the key of a lease nobody keeps alive is still there (%v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, err = s.Txn(ctx, store.Txn{If: []store.Guard{{Bucket: b, Key: "web1", Rev: token}},
		Then: []store.Op{{Bucket: b, Key: "x", Value: []byte("late")}}})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("write under an expired lease's token: %v, want ErrConflict", err)
	}
	_, err = s.Txn(ctx, store.Txn{Then: []store.Op{{Bucket: b, Key: "web1", Value: []byte("late"), Lease: l.ID()}}})
	if !errors.Is(err, store.ErrLeaseGone) {
		t.Fatalf("put attached to an expired lease: %v, want ErrLeaseGone", err)
	}
}

// collect reads n events (or fails after a few seconds).
func collect(t *testing.T, ctx context.Context, s store.Coord, b string, from int64, n int) []store.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out []store.Event
	for ev, err := range s.Watch(ctx, b, from) {
		if err != nil {
			t.Fatalf("watch: %v (after %v)", err, out)
		}
		out = append(out, ev)
		if len(out) == n {
			return out
		}
	}
	t.Fatalf("watch ended after %d of %d events: %v", len(out), n, out)
	return nil
}

func describe(evs []store.Event) string {
	var parts []string
	for _, e := range evs {
		parts = append(parts, fmt.Sprintf("%s %s=%s", e.Kind, e.Key, e.Value))
	}
	return strings.Join(parts, "; ")
}

func testWatchOrder(t *testing.T, s store.Coord) {
	ctx := Bounded(t, 20*time.Second)
	b := bucket(t, "b")
	started := make(chan struct{})
	done := make(chan []store.Event, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		var out []store.Event
		for ev, err := range s.Watch(wctx, b, 0) {
			if err != nil {
				break
			}
			if ev.Key == "ready" {
				close(started)
				continue
			}
			out = append(out, ev)
			if len(out) == 6 {
				break
			}
		}
		done <- out
	}()
	// A watch "from now" sees nothing of before; poke until it runs.
	for i := 0; ; i++ {
		if err := s.Put(ctx, b, "ready", nil); err != nil {
			t.Fatal(err)
		}
		select {
		case <-started:
		case <-time.After(100 * time.Millisecond):
			if i > 50 {
				t.Fatal("watch never started")
			}
			continue
		}
		break
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Put(ctx, b, "a", []byte("1")))
	must(s.Put(ctx, b+"x", "a", []byte("other bucket")))
	must(s.Put(ctx, b, "b", []byte("2")))
	must(s.Put(ctx, b, "a", []byte("3")))
	must(s.Delete(ctx, b, "b"))
	_, err := s.Txn(ctx, store.Txn{Then: []store.Op{{Bucket: b, Key: "t2", Value: []byte("5")}, {Bucket: b, Key: "t1", Value: []byte("6")}}})
	must(err)
	var got []store.Event
	select {
	case got = <-done:
	case <-ctx.Done():
		t.Fatal("watch did not deliver")
	}
	want := "put a=1; put b=2; put a=3; delete b=; put t2=5; put t1=6"
	if describe(got) != want {
		t.Fatalf("events:\n got %s\nwant %s", describe(got), want)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Rev < got[i-1].Rev || i < 5 && got[i].Rev == got[i-1].Rev {
			t.Fatalf("revisions out of order: %v", got)
		}
	}
	if got[4].Rev != got[5].Rev {
		t.Fatalf("one Txn's events carry revisions %d and %d", got[4].Rev, got[5].Rev)
	}
}

func testWatchResume(t *testing.T, s store.Coord) {
	ctx := Bounded(t, 20*time.Second)
	b := bucket(t, "b")
	first, err := store.PutIf(ctx, s, b, "k0", []byte("0"), 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 6; i++ {
		if err := s.Put(ctx, b, fmt.Sprintf("k%d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// A watcher that read three, went away, and comes back from the
	// revision after the last it saw: the rest, nothing twice.
	part := collect(t, ctx, s, b, first, 3)
	for i := 6; i < 8; i++ {
		if err := s.Put(ctx, b, fmt.Sprintf("k%d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	rest := collect(t, ctx, s, b, part[2].Rev+1, 5)
	all := describe(append(part, rest...))
	want := "put k0=0; put k1=1; put k2=2; put k3=3; put k4=4; put k5=5; put k6=6; put k7=7"
	if all != want {
		t.Fatalf("resumed watch:\n got %s\nwant %s", all, want)
	}
}

func testListThenWatch(t *testing.T, s, writer store.Coord) {
	ctx := Bounded(t, 20*time.Second)
	b := bucket(t, "b")
	for _, k := range []string{"b", "a"} {
		if err := writer.Put(ctx, b, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	items, rev, err := s.ListItems(ctx, b)
	if err != nil || len(items) != 2 || items[0].Key != "a" || items[1].Key != "b" {
		t.Fatalf("ListItems = %+v, %v", items, err)
	}
	for _, it := range items {
		if it.Rev <= 0 || it.Rev > rev {
			t.Fatalf("item %s at revision %d, list at %d", it.Key, it.Rev, rev)
		}
	}
	if err := writer.Put(ctx, b, "c", []byte("c")); err != nil {
		t.Fatal(err)
	}
	got := collect(t, ctx, s, b, rev+1, 1)
	if describe(got) != "put c=c" {
		t.Fatalf("watch from the list's revision: %s, want only the later write", describe(got))
	}
}
