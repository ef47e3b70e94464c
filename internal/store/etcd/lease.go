package etcd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/godwit-project/godwit/internal/store"
)

// lease is a store.Lease kept alive by the client's keepalive stream.
type lease struct {
	s    *Store
	id   store.LeaseID
	ttl  time.Duration
	done chan struct{}
	stop context.CancelFunc
	once sync.Once
}

// Grant makes a lease and keeps it alive until Revoke or Close. Its Done
// closes when the client's keepalive stream ends: the server said the
// lease has expired, no renewal arrived for a whole TTL, or the lease was
// revoked or the store closed.
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
	resp, err := s.cli.Grant(cctx, secs)
	if err != nil {
		return nil, s.fail(ctx, "grant lease", err)
	}
	kctx, stop := context.WithCancel(s.base)
	ch, err := s.cli.KeepAlive(kctx, resp.ID)
	if err != nil {
		stop()
		return nil, s.fail(ctx, "keep lease alive", err)
	}
	l := &lease{s: s, id: store.LeaseID(resp.ID), ttl: time.Duration(resp.TTL) * time.Second,
		done: make(chan struct{}), stop: stop}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for range ch { // drain renewals; the channel closes when the lease is lost
		}
		l.end()
	}()
	return l, nil
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
