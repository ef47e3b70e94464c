// Package store is godwit's state: what libvirt does not keep (specs,
// operations, later placement and backup catalogs). One interface, two
// implementations: bolt (single host, the embedded default) and, in cluster
// mode, etcd. Values are JSON; the typed helpers below do the encoding.
//
// Cluster code needs more than Store: revisions, guarded writes, leases and
// watches. That is Coord (coord.go), which only the etcd store implements.
// The contract every implementation must keep is in storetest.
//
// The store never talks to libvirt and holds no domain state of its own.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrNotFound is returned by Get and Delete for a missing key.
var ErrNotFound = errors.New("not found")

// Store is a bucketed key/value store. Buckets are created on first use.
// A bucket name is non-empty and holds no '/'; a key is non-empty.
type Store interface {
	Get(ctx context.Context, bucket, key string) ([]byte, error)
	Put(ctx context.Context, bucket, key string, value []byte) error
	Delete(ctx context.Context, bucket, key string) error
	// List returns every key and value of a bucket, keys in byte order.
	List(ctx context.Context, bucket string) ([]KV, error)
	Close() error
}

// KV is one entry of a bucket.
type KV struct {
	Key   string
	Value []byte
}

// GetJSON reads a value into a T.
func GetJSON[T any](ctx context.Context, s Store, bucket, key string) (T, error) {
	var v T
	b, err := s.Get(ctx, bucket, key)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("store: decode %s/%s: %w", bucket, key, err)
	}
	return v, nil
}

// PutJSON writes v as JSON.
func PutJSON(ctx context.Context, s Store, bucket, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode %s/%s: %w", bucket, key, err)
	}
	return s.Put(ctx, bucket, key, b)
}

// ListJSON reads a whole bucket into Ts, in key order.
func ListJSON[T any](ctx context.Context, s Store, bucket string) ([]T, error) {
	kvs, err := s.List(ctx, bucket)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(kvs))
	for _, kv := range kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("store: decode %s/%s: %w", bucket, kv.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}
