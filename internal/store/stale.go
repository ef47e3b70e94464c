package store

import (
	"context"
	"sync"
	"time"
)

// Stale reads. A cluster store without a quorum refuses every call; a
// caller that can tell its user so may instead have reads answered from
// this host's last view of the store (etcd: a serializable read of the
// local member), which may be behind the cluster's. It asks with
// AllowStale and learns afterwards, from the note, whether any read was.
// Writes never are: they need the quorum.

type staleKey struct{}

// StaleNote says whether reads made under its context were stale, and
// since when the store had no quorum.
type StaleNote struct {
	mu    sync.Mutex
	stale bool
	since time.Time
}

// AllowStale returns a context whose reads may be served from the last
// view, and the note that says whether they were.
func AllowStale(ctx context.Context) (context.Context, *StaleNote) {
	n := &StaleNote{}
	return context.WithValue(ctx, staleKey{}, n), n
}

// StaleAllowed says whether ctx came from AllowStale.
func StaleAllowed(ctx context.Context) bool {
	_, ok := ctx.Value(staleKey{}).(*StaleNote)
	return ok
}

// NoteStale records, in ctx's note, that a read was answered from the
// last view of a store that has had no quorum since since.
func NoteStale(ctx context.Context, since time.Time) {
	n, ok := ctx.Value(staleKey{}).(*StaleNote)
	if !ok {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.stale || since.Before(n.since) {
		n.since = since
	}
	n.stale = true
}

// Stale says whether a read was stale, and since when the store had no
// quorum (zero when not known).
func (n *StaleNote) Stale() (bool, time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stale, n.since
}
