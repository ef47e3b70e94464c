package lock_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/cluster/lock"
	"github.com/godwit-project/godwit/internal/cluster/member"
	"github.com/godwit-project/godwit/internal/cluster/member/membertest"
	"github.com/godwit-project/godwit/internal/store"
	"github.com/godwit-project/godwit/internal/store/etcd"
	"github.com/godwit-project/godwit/internal/store/storetest"
)

// host is one daemon's view: its own connection and lease, as on another
// machine.
type host struct {
	st     *etcd.Store
	lease  store.Lease
	locker *lock.Locker
}

func newHost(t *testing.T, m *member.Member, name string) *host {
	st, err := etcd.Dial(etcd.DialConfig{Endpoints: m.Client().Endpoints(), TLS: m.ClientTLS()}, etcd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := st.Grant(storetest.Bounded(t, 5*time.Second), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return &host{st: st, lease: l, locker: lock.New(st, name, l)}
}

func wantHeld(t *testing.T, err error, holder, what string) {
	t.Helper()
	if !errors.Is(err, lock.ErrHeld) || api.Status(err) != http.StatusConflict {
		t.Fatalf("Lock: %v, want a 409 ErrHeld", err)
	}
	if !strings.Contains(err.Error(), "host "+holder) || !strings.Contains(err.Error(), what) {
		t.Fatalf("Lock error %q does not name holder %s doing %s", err, holder, what)
	}
}

func TestContention(t *testing.T) {
	m := membertest.Single(t)
	a, b := newHost(t, m, "host-a"), newHost(t, m, "host-b")
	ctx := storetest.Bounded(t, 20*time.Second)

	ha, err := a.locker.Lock(ctx, "web1", "migrate")
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.locker.Lock(ctx, "web1", "start")
	wantHeld(t, err, "host-a", "migrate")
	// The same host's second operation is refused too.
	_, err = a.locker.Lock(ctx, "web1", "snapshot")
	wantHeld(t, err, "host-a", "migrate")
	// Other VMs are free.
	hb2, err := b.locker.Lock(ctx, "web2", "start")
	if err != nil {
		t.Fatal(err)
	}
	if rec, ok, err := b.locker.Holder(ctx, "web1"); err != nil || !ok || rec.Host != "host-a" || rec.What != "migrate" {
		t.Fatalf("Holder(web1) = %+v %v %v", rec, ok, err)
	}
	if err := ha.Relabel(ctx, "op-123"); err != nil {
		t.Fatal(err)
	}
	_, err = b.locker.Lock(ctx, "web1", "start")
	wantHeld(t, err, "host-a", "op-123")

	if err := ha.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	hb, err := b.locker.Lock(ctx, "web1", "start")
	if err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}
	// A's old handle cannot release B's lock.
	if err := ha.Unlock(ctx); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("second Unlock: %v, want ErrLost", err)
	}
	if rec, ok, _ := a.locker.Holder(ctx, "web1"); !ok || rec.Host != "host-b" {
		t.Fatalf("a stale Unlock released another's lock: %+v %v", rec, ok)
	}
	for _, h := range []*lock.Held{hb, hb2} {
		if err := h.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRace: many takers at once, on two hosts; exactly one wins.
func TestRace(t *testing.T) {
	m := membertest.Single(t)
	hosts := []*host{newHost(t, m, "host-a"), newHost(t, m, "host-b")}
	ctx := storetest.Bounded(t, 20*time.Second)
	for round := range 5 {
		vm := fmt.Sprintf("race%d", round)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []*lock.Held
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, err := hosts[i%2].locker.Lock(ctx, vm, fmt.Sprint("op", i))
				if err != nil && !errors.Is(err, lock.ErrHeld) {
					t.Error(err)
				}
				if err == nil {
					mu.Lock()
					won = append(won, h)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("round %d: %d takers got the lock", round, len(won))
		}
	}
}

// TestHolderDies: a host that dies holding a lock loses it when its lease
// runs out; until then nobody else gets it, after that its token fences
// its late writes.
func TestHolderDies(t *testing.T) {
	m := membertest.Single(t)
	a, b := newHost(t, m, "host-a"), newHost(t, m, "host-b")
	ctx := storetest.Bounded(t, 20*time.Second)
	hb, err := b.locker.Lock(ctx, "web1", "start")
	if err != nil {
		t.Fatal(err)
	}
	fenced := func(st store.Coord, h *lock.Held, v string) error {
		_, err := st.Txn(ctx, store.Txn{If: []store.Guard{h.Guard()}, Then: []store.Op{{Bucket: "vms", Key: "web1", Value: []byte(v)}}})
		return err
	}
	if err := fenced(b.st, hb, "by b"); err != nil {
		t.Fatalf("fenced write under a held lock: %v", err)
	}
	b.st.Close() // host-b dies: nobody renews its lease
	select {
	case <-hb.Lost():
	case <-time.After(time.Second):
		t.Fatal("Lost not closed when the holder's store closed")
	}
	_, err = a.locker.Lock(ctx, "web1", "restart")
	wantHeld(t, err, "host-b", "start")

	var ha *lock.Held
	deadline := time.Now().Add(b.lease.TTL() + 5*time.Second)
	for {
		ha, err = a.locker.Lock(ctx, "web1", "restart")
		if err == nil {
			break
		}
		if !errors.Is(err, lock.ErrHeld) || time.Now().After(deadline) {
			t.Fatalf("the lock of a dead host was not freed by its lease: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// host-b's token (replayed through a live connection) is refused.
	if err := fenced(a.st, hb, "late b"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("write under a dead holder's token: %v, want ErrConflict", err)
	}
	if err := fenced(a.st, ha, "by a"); err != nil {
		t.Fatal(err)
	}
	if v, _ := a.st.Get(ctx, "vms", "web1"); string(v) != "by a" {
		t.Fatalf("vms/web1 = %q", v)
	}
	// host-a's lease revoked: its lock goes at once and Lock says why.
	if err := a.lease.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.locker.Holder(ctx, "web1"); ok {
		t.Fatal("a revoked lease's lock survived")
	}
	if _, err := a.locker.Lock(ctx, "web1", "x"); !errors.Is(err, store.ErrLeaseGone) {
		t.Fatalf("Lock under a revoked lease: %v, want ErrLeaseGone", err)
	}
	if err := ha.Unlock(context.Background()); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("Unlock of a lock whose lease is gone: %v, want ErrLost", err)
	}
}

// lostAnswer is a store whose next Txn is applied but answered with an
// error, as when the answer of a write that went through is lost (a
// timeout under load).
type lostAnswer struct {
	store.Coord
	lose bool
}

func (s *lostAnswer) Txn(ctx context.Context, t store.Txn) (int64, error) {
	rev, err := s.Coord.Txn(ctx, t)
	if err == nil && s.lose {
		s.lose = false
		return 0, fmt.Errorf("txn: %w: context deadline exceeded", store.ErrUnavailable)
	}
	return rev, err
}

// A lock whose write went through with its answer lost is held (found by
// its token), not left behind saying the VM is busy until the lease
// ends: it unlocks, and another host takes it after.
func TestLockAnswerLost(t *testing.T) {
	m := membertest.Single(t)
	a, b := newHost(t, m, "host-a"), newHost(t, m, "host-b")
	ctx := storetest.Bounded(t, 20*time.Second)
	lossy := &lostAnswer{Coord: a.st, lose: true}
	held, err := lock.New(lossy, "host-a", a.lease).Lock(ctx, "web1", "create")
	if err != nil {
		t.Fatalf("Lock after a lost answer: %v", err)
	}
	if lossy.lose {
		t.Fatal("the store's answer was not lost: the test tests nothing")
	}
	if err := held.Unlock(ctx); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	hb, err := b.locker.Lock(ctx, "web1", "start")
	if err != nil {
		t.Fatalf("host-b's Lock after host-a's unlock: %v", err)
	}
	hb.Unlock(ctx)
}
