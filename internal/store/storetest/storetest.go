// Package storetest is the contract every store keeps, as tests that each
// implementation runs on itself: Store for store.Store (bolt and etcd),
// Coord for store.Coord (etcd). A behaviour that callers rely on belongs
// here, not in one implementation's tests.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/godwit-project/godwit/internal/store"
)

// Opener returns a handle onto the store under test; it is closed when
// the test ends (a test may close it before). For Coord, each call must
// return a new, independent handle onto the same data (another host's
// connection), whose leases end with it. Subtests share the data, so each
// keeps to buckets named after itself.
type Opener[S store.Store] func(t *testing.T) S

// bucket is a bucket name of the test's own.
func bucket(t *testing.T, suffix string) string {
	r := strings.NewReplacer("/", "-", " ", "_")
	return r.Replace(t.Name()) + "-" + suffix
}

// Store runs the store.Store contract.
func Store[S store.Store](t *testing.T, open Opener[S]) {
	t.Run("MissingKeys", func(t *testing.T) { testMissing(t, open(t)) })
	t.Run("PutGetOverwrite", func(t *testing.T) { testPutGet(t, open(t)) })
	t.Run("ListOrderAndIsolation", func(t *testing.T) { testList(t, open(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, open(t)) })
	t.Run("ValuesAreCopies", func(t *testing.T) { testCopies(t, open(t)) })
	t.Run("BadNames", func(t *testing.T) { testBadNames(t, open(t)) })
	t.Run("CanceledContext", func(t *testing.T) { testCanceled(t, open(t)) })
	t.Run("ConcurrentPuts", func(t *testing.T) { testConcurrent(t, open(t)) })
	t.Run("JSONHelpers", func(t *testing.T) { testJSON(t, open(t)) })
}

func testMissing(t *testing.T, s store.Store) {
	ctx := context.Background()
	b := bucket(t, "b")
	if _, err := s.Get(ctx, b, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get in a new bucket: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, b, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete in a new bucket: %v, want ErrNotFound", err)
	}
	if kvs, err := s.List(ctx, b); err != nil || len(kvs) != 0 {
		t.Fatalf("List of a new bucket: %v %v, want empty", kvs, err)
	}
	if err := s.Put(ctx, b, "x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, b, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of a missing key in a bucket: %v, want ErrNotFound", err)
	}
}

func testPutGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	b := bucket(t, "b")
	bin := []byte{0, 1, 2, 0xff, '\n', 0}
	for _, v := range [][]byte{[]byte("one"), []byte("two"), {}, bin} {
		if err := s.Put(ctx, b, "k", v); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, b, "k")
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("Get after Put(%q) = %q, %v", v, got, err)
		}
	}
}

func testList(t *testing.T, s store.Store) {
	ctx := context.Background()
	b := bucket(t, "vm")
	// A bucket whose name starts like b's, and keys that sort around '/'.
	other := b + "s"
	keys := []string{"b", "a/b", "a", "B", "a0", "a.", "\xfe", "z z"}
	for i, k := range keys {
		if err := s.Put(ctx, b, k, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, other, "a", []byte("other")); err != nil {
		t.Fatal(err)
	}
	kvs, err := s.List(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range kvs {
		got = append(got, kv.Key)
		if want := fmt.Sprint(slices.Index(keys, kv.Key)); string(kv.Value) != want {
			t.Errorf("List: %q = %q, want %q", kv.Key, kv.Value, want)
		}
	}
	want := slices.Clone(keys)
	slices.Sort(want) // Go orders strings by bytes
	if !slices.Equal(got, want) {
		t.Fatalf("List keys = %q, want %q (byte order, this bucket only)", got, want)
	}
	if kvs, err := s.List(ctx, other); err != nil || len(kvs) != 1 {
		t.Fatalf("List(%s) = %v, %v: want its one key", other, kvs, err)
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	b := bucket(t, "b")
	for _, k := range []string{"a", "b"} {
		if err := s.Put(ctx, b, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, b, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, b, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if err := s.Delete(ctx, b, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Delete: %v, want ErrNotFound", err)
	}
	if v, err := s.Get(ctx, b, "b"); err != nil || string(v) != "b" {
		t.Fatalf("the other key after Delete: %q %v", v, err)
	}
}

func testCopies(t *testing.T, s store.Store) {
	ctx := context.Background()
	b := bucket(t, "b")
	v := []byte("abc")
	if err := s.Put(ctx, b, "k", v); err != nil {
		t.Fatal(err)
	}
	v[0] = 'X'
	got, _ := s.Get(ctx, b, "k")
	if string(got) != "abc" {
		t.Fatalf("changing the slice given to Put changed the value: %q", got)
	}
	got[1] = 'Y'
	again, _ := s.Get(ctx, b, "k")
	kvs, _ := s.List(ctx, b)
	if string(again) != "abc" || len(kvs) != 1 || string(kvs[0].Value) != "abc" {
		t.Fatalf("changing a returned value changed the store: %q %v", again, kvs)
	}
}

func testBadNames(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, c := range []struct{ bucket, key string }{{"", "k"}, {"a/b", "k"}, {bucket(t, "b"), ""}} {
		if err := s.Put(ctx, c.bucket, c.key, []byte("v")); err == nil {
			t.Errorf("Put(%q, %q) succeeded, want an error", c.bucket, c.key)
		}
		if _, err := s.Get(ctx, c.bucket, c.key); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%q, %q) = %v, want a bad-name error", c.bucket, c.key, err)
		}
	}
	if _, err := s.List(ctx, "a/b"); err == nil {
		t.Error("List(a/b) succeeded, want an error")
	}
}

func testCanceled(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := bucket(t, "b")
	if err := s.Put(ctx, b, "k", []byte("v")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a canceled context: %v", err)
	}
	if _, err := s.Get(ctx, b, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a canceled context: %v", err)
	}
	if _, err := s.Get(context.Background(), b, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a canceled Put wrote: %v", err)
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	b := bucket(t, "b")
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Put(ctx, b, fmt.Sprintf("k%02d", i), []byte{byte(i)})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	kvs, err := s.List(ctx, b)
	if err != nil || len(kvs) != 20 {
		t.Fatalf("List after 20 concurrent puts: %d entries, %v", len(kvs), err)
	}
	for i, kv := range kvs {
		if kv.Key != fmt.Sprintf("k%02d", i) || kv.Value[0] != byte(i) {
			t.Fatalf("entry %d = %q %v", i, kv.Key, kv.Value)
		}
	}
}

func testJSON(t *testing.T, s store.Store) {
	ctx := context.Background()
	b := bucket(t, "b")
	type rec struct{ N int }
	for i, k := range []string{"b", "a", "c"} {
		if err := store.PutJSON(ctx, s, b, k, rec{i}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := store.ListJSON[rec](ctx, s, b)
	if err != nil || !slices.Equal(got, []rec{{1}, {0}, {2}}) {
		t.Fatalf("ListJSON = %v, %v (want key order a b c)", got, err)
	}
	if r, err := store.GetJSON[rec](ctx, s, b, "c"); err != nil || r.N != 2 {
		t.Fatalf("GetJSON = %v, %v", r, err)
	}
	if err := s.Put(ctx, b, "bad", []byte("{")); err != nil {
		t.Fatal(err)
	}
	if _, err := store.GetJSON[rec](ctx, s, b, "bad"); err == nil || !strings.Contains(err.Error(), b+"/bad") {
		t.Fatalf("GetJSON of bad JSON: %v, want an error naming the key", err)
	}
}
