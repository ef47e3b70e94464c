// Package lock is per-VM locks across the hosts of a cluster, so that two
// hosts never run an operation on one VM at once. A lock is a record in
// the cluster store (bucket "vmlocks", key the VM name) that says who
// holds it, written only if absent (a compare-and-swap) and attached to
// the holder's lease: it is released by Unlock, or by the store when the
// holder's lease runs out (the host died or lost the cluster).
//
// A lock does not stop a holder that has lost it from writing: guard each
// write made under the lock with Held.Guard, the fencing token, and the
// store refuses it once the lock is gone or someone else's.
//
// The package knows nothing of VMs beyond their names; internal/vm takes
// and releases the locks around its operations.
package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/store"
)

// Bucket holds the lock records.
const Bucket = "vmlocks"

var (
	// ErrHeld: someone holds the lock (the error is a 409 that says who).
	ErrHeld = errors.New("vm is locked")
	// ErrLost: the lock is no longer this holder's (its lease ran out).
	ErrLost = errors.New("lock lost")
)

// Record is what a lock says, for people and for 'godwit op list'.
type Record struct {
	// Host holds the lock; What it is doing (an action or operation id).
	Host  string    `json:"host"`
	What  string    `json:"what"`
	Since time.Time `json:"since"`
	// Token tells this take of the lock from any other: a write whose
	// answer was lost is found to be this one's.
	Token string `json:"token,omitempty"`
}

// Locker takes locks for one host, under that host's lease.
type Locker struct {
	st    store.Coord
	host  string
	lease store.Lease
	now   func() time.Time
}

// New is a Locker for host, whose locks live as long as lease.
func New(st store.Coord, host string, lease store.Lease) *Locker {
	return &Locker{st: st, host: host, lease: lease, now: time.Now}
}

// Held is a lock this host holds. Its methods may be called from
// several goroutines (an operation relabels it while another ends it).
type Held struct {
	l  *Locker
	vm string

	mu  sync.Mutex // guards rev and rec, and orders Relabel and Unlock
	rev int64
	rec Record
}

// Lock takes vm's lock for what, at once or not at all: when another
// operation holds it (on any host, this one included) it fails with a 409
// wrapping ErrHeld that names the holder; when this host's lease is gone,
// with an error wrapping store.ErrLeaseGone.
func (l *Locker) Lock(ctx context.Context, vm, what string) (*Held, error) {
	var tok [8]byte
	_, _ = rand.Read(tok[:])
	rec := Record{Host: l.host, What: what, Since: l.now().UTC().Truncate(time.Second), Token: hex.EncodeToString(tok[:])}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	// Twice at most: the holder may let go between our write and our read.
	for range 2 {
		rev, err := l.st.Txn(ctx, store.Txn{
			If:   []store.Guard{{Bucket: Bucket, Key: vm}},
			Then: []store.Op{{Bucket: Bucket, Key: vm, Value: b, Lease: l.lease.ID()}},
		})
		if err == nil {
			return &Held{l: l, vm: vm, rev: rev, rec: rec}, nil
		}
		if errors.Is(err, store.ErrLeaseGone) {
			return nil, fmt.Errorf("lock vm %s: this host's cluster lease is gone (is it cut off from the cluster?): %w", vm, err)
		}
		if !errors.Is(err, store.ErrConflict) {
			// The write may have gone through with its answer lost (a
			// timeout under load, a leader change): then the lock is
			// this one's, and left alone it would say the VM is busy
			// until this host's lease ends.
			if h, ok := l.mine(ctx, vm, rec); ok {
				return h, nil
			}
			return nil, fmt.Errorf("lock vm %s: %w", vm, err)
		}
		cur, ok, err := l.Holder(ctx, vm)
		if err != nil {
			return nil, fmt.Errorf("lock vm %s: %w", vm, err)
		}
		if ok {
			return nil, api.StatusErrorf(http.StatusConflict, "vm %s is busy: %s is in progress on host %s (since %s): %w",
				vm, cur.What, cur.Host, cur.Since.Format(time.RFC3339), ErrHeld)
		}
	}
	return nil, api.StatusErrorf(http.StatusConflict, "vm %s is busy: it was locked and released twice while this host tried: %w", vm, ErrHeld)
}

// mine reads vm's lock after a write of rec whose answer was lost: when
// the record there is rec (its token), the write went through and the
// lock is held.
func (l *Locker) mine(ctx context.Context, vm string, rec Record) (*Held, bool) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	it, err := l.st.GetItem(cctx, Bucket, vm)
	if err != nil {
		return nil, false
	}
	var cur Record
	if json.Unmarshal(it.Value, &cur) != nil || cur.Token != rec.Token {
		return nil, false
	}
	return &Held{l: l, vm: vm, rev: it.Rev, rec: rec}, true
}

// Holder says who holds vm's lock (ok false: nobody).
func (l *Locker) Holder(ctx context.Context, vm string) (Record, bool, error) {
	rec, err := store.GetJSON[Record](ctx, l.st, Bucket, vm)
	if errors.Is(err, store.ErrNotFound) {
		return Record{}, false, nil
	}
	return rec, err == nil, err
}

// Record is what the lock says.
func (h *Held) Record() Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rec
}

// Guard is the fencing token: a guard that holds while this lock is held
// by this holder (the record it wrote, which goes with its lease). Put it
// in the If of every Txn made under the lock.
func (h *Held) Guard() store.Guard {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.guard()
}

func (h *Held) guard() store.Guard { return store.Guard{Bucket: Bucket, Key: h.vm, Rev: h.rev} }

// Lost is closed when the lease under the lock is gone: stop acting on
// the VM, since another host may take the lock after the lease's TTL.
func (h *Held) Lost() <-chan struct{} { return h.l.lease.Done() }

// Relabel changes what the lock says it is doing (once an operation id
// is known), keeping it held.
func (h *Held) Relabel(ctx context.Context, what string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	rec := h.rec
	rec.What = what
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	rev, err := h.l.st.Txn(ctx, store.Txn{
		If:   []store.Guard{h.guard()},
		Then: []store.Op{{Bucket: Bucket, Key: h.vm, Value: b, Lease: h.l.lease.ID()}},
	})
	if err != nil {
		return h.lost("relabel", err)
	}
	h.rev, h.rec = rev, rec
	return nil
}

// Unlock releases the lock if it is still this holder's; ErrLost when it
// is not (it ran out, and may be someone else's now: that one is left
// alone).
func (h *Held) Unlock(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.l.st.Txn(ctx, store.Txn{
		If:   []store.Guard{h.guard()},
		Then: []store.Op{{Bucket: Bucket, Key: h.vm, Delete: true}},
	})
	return h.lost("unlock", err)
}

func (h *Held) lost(what string, err error) error {
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrLeaseGone) {
		return fmt.Errorf("%s vm %s: %w (%v)", what, h.vm, ErrLost, err)
	}
	if err != nil {
		return fmt.Errorf("%s vm %s: %w", what, h.vm, err)
	}
	return nil
}
