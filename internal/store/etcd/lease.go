package etcd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/godwit-project/godwit/internal/store"
)

// lease is a store.Lease kept alive by renewals of its own, one every
// sixth of its TTL, each timed from when it was sent: the server renewed
// the lease after that moment, so it lives at least a TTL past it (its
// Renewed). etcd's keepalive stream times a renewal from when its answer
// arrives, later than the server's renewal: a holder that fences itself
// needs the earlier, safe bound.
type lease struct {
	s    *Store
	id   store.LeaseID
	ttl  time.Duration
	done chan struct{}
	stop context.CancelFunc
	once sync.Once

	mu      sync.Mutex
	renewed time.Time
}

// Grant makes a lease and keeps it alive until Revoke or Close. Its Done
// closes when the server says the lease is gone (expired or revoked),
// when no renewal went through for a whole TTL past the send of the last
// one that did, or when the lease is revoked or the store closed.
func (s *Store) Grant(ctx context.Context, ttl time.Duration) (store.Lease, error) {
	secs := int64(math.Ceil(ttl.Seconds()))
	if secs < 1 {
		secs = 1
	}
	if err := s.base.Err(); err != nil {
		return nil, errClosed
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	sent := time.Now()
	resp, err := s.cli.Grant(cctx, secs)
	if err != nil {
		return nil, s.fail(ctx, "grant lease", err)
	}
	kctx, stop := context.WithCancel(s.base)
	l := &lease{s: s, id: store.LeaseID(resp.ID), ttl: time.Duration(resp.TTL) * time.Second,
		done: make(chan struct{}), stop: stop, renewed: sent}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer l.end()
		l.keep(kctx)
	}()
	return l, nil
}

// keep renews the lease every sixth of its TTL until ctx ends, the server
// says it is gone, or no renewal went through for a whole TTL. A renewal
// that fails is tried again soon: each try may go to another member (the
// client balances over them), and one that does not answer (cut off) must
// not cost the lease, nor make a holder that fences itself on a late
// renewal fence while the rest of the cluster is fine.
func (l *lease) keep(ctx context.Context) {
	every := max(l.ttl/6, 200*time.Millisecond)
	next := every
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
		sent := time.Now()
		cctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), every)
		resp, err := l.s.cli.KeepAliveOnce(cctx, clientv3.LeaseID(l.id))
		cancel()
		next = every
		switch {
		case err == nil && resp.TTL > 0:
			l.mu.Lock()
			l.renewed = sent
			l.mu.Unlock()
		case err == nil, errors.Is(err, rpctypes.ErrLeaseNotFound):
			return // expired or revoked
		default:
			next = every / 5
		}
		if time.Since(l.Renewed()) >= l.ttl {
			return // not renewed for a whole TTL: it may have expired
		}
	}
}

// Renewed is when the last renewal that went through was sent.
func (l *lease) Renewed() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.renewed
}

func (l *lease) end() {
	l.once.Do(func() {
		l.stop()
		close(l.done)
	})
}

func (l *lease) ID() store.LeaseID     { return l.id }
func (l *lease) TTL() time.Duration    { return l.ttl }
func (l *lease) Done() <-chan struct{} { return l.done }
func (l *lease) String() string        { return fmt.Sprintf("lease %x", int64(l.id)) }
func (l *lease) Revoke(ctx context.Context) error {
	l.stop()
	cctx, cancel := l.s.call(ctx)
	defer cancel()
	_, err := l.s.cli.Revoke(cctx, clientv3.LeaseID(l.id))
	<-l.done
	// A lease that already ran out is revoked all the same.
	if err = l.s.fail(ctx, "revoke "+l.String(), err); err != nil && !errors.Is(err, store.ErrLeaseGone) {
		return err
	}
	return nil
}
