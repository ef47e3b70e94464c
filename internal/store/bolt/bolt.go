// Package bolt implements store.Store on a bbolt file: the single-host,
// embedded default. bbolt takes a file lock, so two daemons can never share
// one state dir by accident.
package bolt

import (
	"context"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/godwit-project/godwit/internal/store"
)

// Store is a store.Store backed by one bbolt file.
type Store struct {
	db *bbolt.DB
}

var _ store.Store = (*Store)(nil)

// Open opens (or creates) the database file. It fails after a second when
// another process holds the file.
func Open(path string) (*Store, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		if err == bbolt.ErrTimeout {
			return nil, fmt.Errorf("state file %s is locked by another process (is another godwit daemon using this state dir?)", path)
		}
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	// Writes go through Batch: concurrent ones (20 creates at once, each
	// committing its record and operation) share one fsynced commit
	// instead of queueing for one each. A lone write waits at most this
	// long for company, against ~5 ms for the fsync itself.
	db.MaxBatchDelay = time.Millisecond
	return &Store{db: db}, nil
}

// Get returns a copy of the value, or store.ErrNotFound.
func (s *Store) Get(ctx context.Context, bucket, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := store.CheckName(bucket, key); err != nil {
		return nil, err
	}
	var out []byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return store.ErrNotFound
		}
		v := b.Get([]byte(key))
		if v == nil {
			return store.ErrNotFound
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

// Put writes the value, creating the bucket when needed.
func (s *Store) Put(ctx context.Context, bucket, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckName(bucket, key); err != nil {
		return err
	}
	// Batch may run the function twice (again alone when another in the
	// batch failed): a put is idempotent.
	return s.db.Batch(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), value)
	})
}

// Delete removes the key; store.ErrNotFound when it is not there.
func (s *Store) Delete(ctx context.Context, bucket, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckName(bucket, key); err != nil {
		return err
	}
	return s.db.Batch(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil || b.Get([]byte(key)) == nil {
			return store.ErrNotFound
		}
		return b.Delete([]byte(key))
	})
}

// List returns the bucket's entries in key order (empty for a new bucket).
func (s *Store) List(ctx context.Context, bucket string) ([]store.KV, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := store.CheckBucket(bucket); err != nil {
		return nil, err
	}
	var out []store.KV
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out = append(out, store.KV{Key: string(k), Value: append([]byte(nil), v...)})
			return nil
		})
	})
	return out, err
}

var _ store.Bucketer = (*Store)(nil)

// Buckets lists the buckets, in byte order.
func (s *Store) Buckets(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []string
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			out = append(out, string(name))
			return nil
		})
	})
	return out, err
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }
