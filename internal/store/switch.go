package store

import (
	"context"
	"errors"
	"sync"
)

// Switch is a Store whose backing store can be replaced while it is in
// use: a daemon starts on its bolt file and moves onto the cluster store
// when its host joins a cluster, without its services noticing. Replace
// waits for the calls under way, runs with no call running (the move of
// the data happens then), and every call after it goes to the new store.
type Switch struct {
	mu  sync.RWMutex
	cur Store
}

var _ Store = (*Switch)(nil)

// NewSwitch is a Switch onto s.
func NewSwitch(s Store) *Switch { return &Switch{cur: s} }

// Current is the store calls go to now.
func (s *Switch) Current() Store {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur
}

// Replace hands the current store to move, with no call running until
// move returns; the store move returns takes over, unless move fails, in
// which case nothing changes. The old store is not closed: it is move's
// business (the caller may close it once Replace returns).
func (s *Switch) Replace(move func(old Store) (Store, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next, err := move(s.cur)
	if err != nil {
		return err
	}
	if next == nil {
		return errors.New("store: Replace with no store")
	}
	s.cur = next
	return nil
}

func (s *Switch) Get(ctx context.Context, bucket, key string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Get(ctx, bucket, key)
}

func (s *Switch) Put(ctx context.Context, bucket, key string, value []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Put(ctx, bucket, key, value)
}

func (s *Switch) Delete(ctx context.Context, bucket, key string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Delete(ctx, bucket, key)
}

func (s *Switch) List(ctx context.Context, bucket string) ([]KV, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.List(ctx, bucket)
}

// Close closes the current store.
func (s *Switch) Close() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Close()
}

// Bucketer is a store that can list its buckets (bolt can).
type Bucketer interface {
	Store
	Buckets(ctx context.Context) ([]string, error)
}

// copyBatch is how many keys Copy writes in one transaction (etcd takes
// 128 operations per transaction by default).
const copyBatch = 100

// Copy writes every key of every bucket of from into to, a bucket's keys
// in batches of one transaction each, and returns how many keys it
// copied. What to holds already is overwritten, not cleared.
func Copy(ctx context.Context, from Bucketer, to Coord) (int, error) {
	buckets, err := from.Buckets(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, b := range buckets {
		kvs, err := from.List(ctx, b)
		if err != nil {
			return n, err
		}
		for len(kvs) > 0 {
			batch := kvs[:min(copyBatch, len(kvs))]
			kvs = kvs[len(batch):]
			var ops []Op
			for _, kv := range batch {
				ops = append(ops, Op{Bucket: b, Key: kv.Key, Value: kv.Value})
			}
			if _, err := to.Txn(ctx, Txn{Then: ops}); err != nil {
				return n, err
			}
			n += len(batch)
		}
	}
	return n, nil
}
