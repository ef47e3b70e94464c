package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/internal/cluster/member/membertest"
	"github.com/godwit-project/godwit/internal/store"
	"github.com/godwit-project/godwit/internal/store/bolt"
	"github.com/godwit-project/godwit/internal/store/etcd"
	"github.com/godwit-project/godwit/internal/store/storetest"
)

// dialer returns an Opener onto one single-member cluster: each call is a
// new client, as another host's daemon would have.
func dialer(t *testing.T, o etcd.Options) storetest.Opener[*etcd.Store] {
	m := membertest.Single(t)
	return func(t *testing.T) *etcd.Store {
		s, err := etcd.Dial(etcd.DialConfig{Endpoints: m.Client().Endpoints(), TLS: m.ClientTLS()}, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

func TestContract(t *testing.T) {
	storetest.Coord(t, dialer(t, etcd.Options{}))
}

func TestKeysLiveUnderPrefix(t *testing.T) {
	s := dialer(t, etcd.Options{Prefix: "/p"})(t)
	ctx := storetest.Bounded(t, 10*time.Second)
	if err := s.Put(ctx, "vms", "web1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client().Get(ctx, "/p/vms/web1")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "x" {
		t.Fatalf("raw key /p/vms/web1: %v %v", resp, err)
	}
}

func TestListPages(t *testing.T) {
	s := dialer(t, etcd.Options{})(t)
	ctx := storetest.Bounded(t, 30*time.Second)
	// More keys than one page holds, written in one transaction each 100.
	const n = 1234
	for i := 0; i < n; i += 100 {
		var ops []store.Op
		for j := i; j < min(i+100, n); j++ {
			ops = append(ops, store.Op{Bucket: "big", Key: keyN(j), Value: []byte{byte(j)}})
		}
		if _, err := s.Txn(ctx, store.Txn{Then: ops}); err != nil {
			t.Fatal(err)
		}
	}
	kvs, err := s.List(ctx, "big")
	if err != nil || len(kvs) != n {
		t.Fatalf("List: %d entries, %v; want %d", len(kvs), err, n)
	}
	for i, kv := range kvs {
		if kv.Key != keyN(i) || kv.Value[0] != byte(i) {
			t.Fatalf("entry %d: %q", i, kv.Key)
		}
	}
}

func keyN(i int) string { return fmt.Sprintf("k%04d", i) }

func TestWatchCompacted(t *testing.T) {
	s := dialer(t, etcd.Options{})(t)
	ctx := storetest.Bounded(t, 10*time.Second)
	first, err := store.PutIf(ctx, s, "c", "k", []byte("1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	last, err := store.PutIf(ctx, s, "c", "k", []byte("2"), first)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client().Compact(ctx, last); err != nil {
		t.Fatal(err)
	}
	for _, err := range s.Watch(ctx, "c", first) {
		if !errors.Is(err, store.ErrCompacted) {
			t.Fatalf("watch from a compacted revision: %v, want ErrCompacted", err)
		}
		return
	}
	t.Fatal("watch from a compacted revision ended without an error")
}

func TestClosedStore(t *testing.T) {
	s := dialer(t, etcd.Options{})(t)
	ctx := storetest.Bounded(t, 10*time.Second)
	l, err := s.Grant(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() {
		for _, err := range s.Watch(context.Background(), "x", 0) {
			werr <- err
			return
		}
		werr <- nil
	}()
	time.Sleep(100 * time.Millisecond)
	s.Close()
	select {
	case err := <-werr:
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("watch on a closed store ended with %v, want ErrUnavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch outlived its store")
	}
	select {
	case <-l.Done():
	default:
		t.Fatal("lease Done still open after Close")
	}
	if _, err := s.Grant(ctx, time.Second); err == nil {
		t.Fatal("Grant on a closed store succeeded")
	}
}

// Copy moves a bolt file's buckets into a namespace, in batches.
func TestCopyFromBolt(t *testing.T) {
	ctx := storetest.Bounded(t, 20*time.Second)
	b, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := range 250 {
		if err := b.Put(ctx, "operations", keyN(i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Put(ctx, "meta", "id", []byte("abc")); err != nil {
		t.Fatal(err)
	}
	s := dialer(t, etcd.Options{Prefix: "/godwit/hosts/h1/"})(t)
	n, err := store.Copy(ctx, b, s)
	if err != nil || n != 251 {
		t.Fatalf("Copy: %d keys, %v", n, err)
	}
	if kvs, err := s.List(ctx, "operations"); err != nil || len(kvs) != 250 || kvs[249].Value[0] != 249 {
		t.Fatalf("operations copied: %d %v", len(kvs), err)
	}
	if v, err := s.Get(ctx, "meta", "id"); err != nil || string(v) != "abc" {
		t.Fatalf("meta/id: %q %v", v, err)
	}
}

// While Ready says no, a call fails at once as unavailable, explained.
func TestNotReadyFailsAtOnce(t *testing.T) {
	ready := false
	s := dialer(t, etcd.Options{Ready: func() bool { return ready },
		Explain: func(err error) error { return fmt.Errorf("no quorum here: %w", err) }})(t)
	ctx := storetest.Bounded(t, 10*time.Second)
	t0 := time.Now()
	err := s.Put(ctx, "b", "k", []byte("v"))
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "no quorum here") || time.Since(t0) > time.Second {
		t.Fatalf("Put while not ready: %v after %s, want an explained ErrUnavailable at once", err, time.Since(t0))
	}
	ready = true
	if err := s.Put(ctx, "b", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
}

// ListRanges reads many prefixes in transactions of 100 ranges: each
// range's keys relative to its prefix, in order, values unless keys
// only; an empty range is empty; a prefix without '/' is refused.
func TestListRanges(t *testing.T) {
	s := dialer(t, etcd.Options{})(t)
	ctx := storetest.Bounded(t, 30*time.Second)
	const buckets = 250 // three transactions
	var ranges []etcd.Range
	for b := range buckets {
		var ops []store.Op
		for k := range b % 4 {
			ops = append(ops, store.Op{Bucket: fmt.Sprintf("h%03d", b), Key: keyN(k), Value: []byte{byte(b), byte(k)}})
		}
		if len(ops) > 0 {
			if _, err := s.Txn(ctx, store.Txn{Then: ops}); err != nil {
				t.Fatal(err)
			}
		}
		ranges = append(ranges, etcd.Range{Prefix: fmt.Sprintf("h%03d/", b), KeysOnly: b%2 == 1})
	}
	got, err := s.ListRanges(ctx, ranges)
	if err != nil || len(got) != buckets {
		t.Fatalf("ListRanges: %d ranges, %v", len(got), err)
	}
	for b, items := range got {
		if len(items) != b%4 {
			t.Fatalf("range %d: %d items, want %d", b, len(items), b%4)
		}
		for k, it := range items {
			wantValue := b%2 == 0
			if it.Key != keyN(k) || it.Rev == 0 || (len(it.Value) == 2) != wantValue || (wantValue && it.Value[0] != byte(b)) {
				t.Fatalf("range %d item %d: %+v", b, k, it)
			}
		}
	}
	if _, err := s.ListRanges(ctx, []etcd.Range{{Prefix: "h001"}}); err == nil {
		t.Fatal("a prefix without '/': no error")
	}
}
