package store

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"
)

// Errors of Coord. Each is wrapped with what was asked; test with errors.Is.
var (
	// ErrConflict: a guard of a Txn did not hold (the key moved on since it
	// was read, or a key that had to be absent is there). HTTP 409.
	ErrConflict = errors.New("revision conflict")
	// ErrLeaseGone: the lease a write is attached to has expired or was
	// revoked. The writer has lost whatever the lease stood for.
	ErrLeaseGone = errors.New("lease gone")
	// ErrCompacted: a watch asked for revisions the store no longer keeps.
	// The watcher must read the bucket again (ListItems) and watch on from
	// the revision that returns.
	ErrCompacted = errors.New("revision compacted")
	// ErrUnavailable: the store cannot serve the call now (no quorum, no
	// reachable member). HTTP 503. Retrying later may succeed.
	ErrUnavailable = errors.New("store unavailable")
)

// Coord is what cluster code needs of a store beyond Store: revisions,
// writes guarded by them (compare-and-swap, the fencing token), leases and
// ordered watches. Revisions are the store's: every write gets a higher
// one, and a key's revision is that of its last write (its etcd
// ModRevision); 0 means the key does not exist.
type Coord interface {
	Store
	// GetItem returns a key's value with its revision, or ErrNotFound.
	GetItem(ctx context.Context, bucket, key string) (Item, error)
	// ListItems returns a bucket in key order, all read at one revision,
	// and that revision: watch from rev+1 to miss nothing.
	ListItems(ctx context.Context, bucket string) (items []Item, rev int64, err error)
	// Txn applies all of t.Then atomically if every guard in t.If holds,
	// and returns the revision it wrote at. When a guard fails nothing is
	// written and the error is a *ConflictError (errors.Is ErrConflict);
	// when a put's lease is gone it is ErrLeaseGone.
	Txn(ctx context.Context, t Txn) (rev int64, err error)
	// Grant makes a lease that lives ttl (rounded up to whole seconds, at
	// least the store's minimum) past the last time it was renewed. It is
	// kept alive until Revoke, until the store is closed, or until renewal
	// fails for longer than ttl.
	Grant(ctx context.Context, ttl time.Duration) (Lease, error)
	// Watch yields the bucket's changes with a revision of at least
	// fromRev (0: from now on), in revision order and, within a revision,
	// in the order they were written. It survives the loss of a member
	// or connection by watching on from the last revision it yielded, so
	// no change is skipped or repeated. It ends when ctx ends, and after
	// yielding an error that wraps ErrCompacted or ErrUnavailable when it
	// cannot go on (the store was closed).
	Watch(ctx context.Context, bucket string, fromRev int64) iter.Seq2[Event, error]
}

// Item is a value with its revision.
type Item struct {
	Key   string
	Value []byte
	Rev   int64
	// Lease the key is attached to (0: none); it goes with the lease.
	Lease LeaseID
}

// LeaseID names a lease. 0 is no lease.
type LeaseID int64

// Lease is a grant that ends unless renewed: keys attached to it are
// deleted when it ends, and writes attached to it are refused after.
// A lease alone gives no mutual exclusion: guard writes with a key's
// revision too (see Guard).
type Lease interface {
	ID() LeaseID
	TTL() time.Duration
	// Done is closed once the lease can no longer be trusted to be alive:
	// it expired or was revoked, the store was closed, or it was not
	// renewed for a whole TTL (the store unreachable). A holder of
	// anything under the lease must stop acting on it then.
	Done() <-chan struct{}
	// Renewed is when the last renewal the store accepted was sent (at
	// first, the grant): the store keeps the lease at least TTL past it,
	// unless it is revoked. A holder that must stop acting before
	// another may (fencing) times its deadline from here.
	Renewed() time.Time
	// Revoke ends the lease now, deleting its keys.
	Revoke(ctx context.Context) error
}

// Txn is a guarded, atomic batch of writes.
type Txn struct {
	If   []Guard
	Then []Op
}

// Guard is a condition on one key: its revision is Rev (0: the key is
// absent). A revision names one write, and a key written under a lease
// vanishes with the lease, so a guard on such a key holds only while that
// lease is alive and nobody rewrote the key: it is the fencing token of
// whoever wrote it (lease alive AND revision unchanged).
type Guard struct {
	Bucket, Key string
	Rev         int64
}

// Op is one write: a put of Value, or a delete when Delete is set (a
// delete of a missing key is no error in a Txn; guard it to require the
// key). A put with a Lease is attached to it.
type Op struct {
	Bucket, Key string
	Value       []byte
	Delete      bool
	Lease       LeaseID
}

// EventKind says what happened to a key.
type EventKind int

const (
	EventPut EventKind = iota + 1
	EventDelete
)

func (k EventKind) String() string {
	switch k {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one change of a watched bucket. Value is nil for a delete.
type Event struct {
	Kind  EventKind
	Key   string
	Value []byte
	Rev   int64
}

// ConflictError says which guard of a Txn failed and what the key's
// revision was instead (0: absent).
type ConflictError struct {
	Guard  Guard
	Actual int64
}

func (e *ConflictError) Error() string {
	rev := func(r int64) string {
		if r == 0 {
			return "absent"
		}
		return fmt.Sprintf("at revision %d", r)
	}
	return fmt.Sprintf("%s/%s: want it %s, it is %s: %v", e.Guard.Bucket, e.Guard.Key, rev(e.Guard.Rev), rev(e.Actual), ErrConflict)
}

func (e *ConflictError) Unwrap() error { return ErrConflict }

// PutIf writes value if the key is at revision rev (0: absent) and returns
// the new revision: compare-and-swap.
func PutIf(ctx context.Context, c Coord, bucket, key string, value []byte, rev int64) (int64, error) {
	return c.Txn(ctx, Txn{
		If:   []Guard{{Bucket: bucket, Key: key, Rev: rev}},
		Then: []Op{{Bucket: bucket, Key: key, Value: value}},
	})
}

// DeleteIf deletes the key if it is at revision rev.
func DeleteIf(ctx context.Context, c Coord, bucket, key string, rev int64) error {
	if rev == 0 {
		return fmt.Errorf("store: DeleteIf %s/%s: revision 0 means absent, nothing to delete", bucket, key)
	}
	_, err := c.Txn(ctx, Txn{
		If:   []Guard{{Bucket: bucket, Key: key, Rev: rev}},
		Then: []Op{{Bucket: bucket, Key: key, Delete: true}},
	})
	return err
}

// CheckBucket refuses a bucket name no store can keep the same way: an
// empty one, or one with a '/' (the etcd store's separator).
func CheckBucket(bucket string) error {
	if bucket == "" || strings.Contains(bucket, "/") {
		return fmt.Errorf("store: bucket %q: must be non-empty and hold no '/'", bucket)
	}
	return nil
}

// CheckName is CheckBucket, and refuses an empty key.
func CheckName(bucket, key string) error {
	if err := CheckBucket(bucket); err != nil {
		return err
	}
	if key == "" {
		return fmt.Errorf("store: empty key in bucket %s", bucket)
	}
	return nil
}
