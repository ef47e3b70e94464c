package etcd

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/godwit-project/godwit/internal/store"
)

var errClosed = fmt.Errorf("etcd store: closed: %w", store.ErrUnavailable)

// rewatchDelay is the pause before watching again after a watch broke.
const rewatchDelay = 100 * time.Millisecond

// Watch yields the bucket's changes from fromRev on. When the underlying
// etcd watch breaks (its member lost the leader, or the connection went),
// it watches again from the revision after the last one it yielded, on
// whichever member the client then reaches: the caller sees one unbroken,
// ordered stream. It ends when ctx ends, after an ErrCompacted error (the
// revisions it needs are gone), or after an error when the store closes.
func (s *Store) Watch(ctx context.Context, bucket string, fromRev int64) iter.Seq2[store.Event, error] {
	return func(yield func(store.Event, error) bool) {
		if err := store.CheckBucket(bucket); err != nil {
			yield(store.Event{}, err)
			return
		}
		// End with the store too: its client may be about to close.
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(s.base, cancel)
		defer stop()

		prefix := s.bucketPrefix(bucket)
		next := fromRev
		for {
			var err error
			next, err = s.watchOnce(wctx, prefix, bucket, next, yield)
			switch {
			case errors.Is(err, errStop), ctx.Err() != nil:
				return
			case s.base.Err() != nil:
				yield(store.Event{}, fmt.Errorf("watch %s: %w", bucket, errClosed))
				return
			case err != nil:
				yield(store.Event{}, err)
				return
			}
			select {
			case <-wctx.Done():
			case <-time.After(rewatchDelay):
			}
		}
	}
}

// errStop: the consumer stopped; nothing more may be yielded.
var errStop = errors.New("stop")

// watchOnce runs one etcd watch from next and returns the revision to go
// on from when it breaks, or an error when the whole Watch must end.
func (s *Store) watchOnce(ctx context.Context, prefix, bucket string, next int64, yield func(store.Event, error) bool) (int64, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCreatedNotify()}
	if next > 0 {
		opts = append(opts, clientv3.WithRev(next))
	}
	for resp := range s.cli.Watch(wctx, prefix, opts...) {
		if resp.CompactRevision != 0 {
			return next, fmt.Errorf("watch %s from revision %d: the store keeps revisions from %d on only: %w",
				bucket, next, resp.CompactRevision, store.ErrCompacted)
		}
		if resp.Err() != nil {
			break // canceled by the server (no leader...): watch again
		}
		if resp.Created && next == 0 {
			// "From now": pin now, so a rewatch does not skip what
			// happened between the two watches.
			next = resp.Header.Revision + 1
		}
		for _, ev := range resp.Events {
			e := store.Event{Key: string(ev.Kv.Key[len(prefix):]), Rev: ev.Kv.ModRevision, Kind: store.EventPut, Value: ev.Kv.Value}
			if ev.Type == mvccpb.DELETE {
				e.Kind, e.Value = store.EventDelete, nil
			}
			if !yield(e, nil) {
				return next, errStop // the consumer stopped: yield no more
			}
			next = e.Rev + 1
		}
	}
	return next, nil
}
