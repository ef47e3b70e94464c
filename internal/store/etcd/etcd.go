// Package etcd implements store.Store and store.Coord on an etcd client:
// the cluster-mode store. A bucket is a key prefix: key k of bucket b is
// PREFIX + b + "/" + k (PREFIX is "/godwit/" unless Options say otherwise),
// so a bucket's keys list in byte order as bolt's do.
//
// Every call is linearizable and needs a leader: on the minority side of a
// partition it fails fast with an error wrapping store.ErrUnavailable
// instead of waiting, except a read whose context allows a stale answer
// (store.AllowStale, Options.Stale): that one is this host's replica's
// last view, and noted so. Every call is bounded by Options.Timeout (and by its
// context), so no call hangs when no member answers.
//
// The package neither runs nor manages etcd members (that is
// internal/cluster/member); it only talks to them.
package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/godwit-project/godwit/internal/store"
)

// DefaultPrefix is where godwit's keys live in etcd.
const DefaultPrefix = "/godwit/"

// DefaultTimeout bounds a call.
const DefaultTimeout = 5 * time.Second

// listPage is how many keys one List request reads.
const listPage = 500

// Options tune a Store. The zero value is the defaults.
type Options struct {
	// Prefix of every key ("" is DefaultPrefix). It ends in '/'.
	Prefix string
	// Timeout bounds each call (0 is DefaultTimeout); running out of it
	// is store.ErrUnavailable. Watches are not bounded by it.
	Timeout time.Duration
	// Explain, when set, is given every error that wraps
	// store.ErrUnavailable and returns the error to hand back instead: a
	// member uses it to name the members the cluster lost. What it returns
	// must still wrap the error it was given.
	Explain func(error) error
	// Ready, when set, says whether the store can serve now (a member
	// that knows a leader): while it says no, calls fail at once as
	// unavailable instead of waiting for their Timeout.
	Ready func() bool
	// Stale, when set, is this host's own replica: while Ready says no,
	// a read whose context allows it (store.AllowStale) is answered by a
	// serializable read of local (no quorum needed), and noted stale
	// since the time Stale gives.
	Stale func() (local *clientv3.Client, since time.Time)
	// Lost, when set, is closed when the store loses its quorum: calls
	// under way then fail as unavailable at once, instead of at their
	// Timeout (a request sent just before a cut would wait for it).
	Lost func() <-chan struct{}
}

// Store is a store.Coord on an etcd client.
type Store struct {
	cli     *clientv3.Client
	own     bool // Close closes cli
	prefix  string
	timeout time.Duration
	explain func(error) error
	ready   func() bool
	stale   func() (*clientv3.Client, time.Time)
	lost    func() <-chan struct{}

	// base ends with Close: it carries the leases' keepalives.
	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ store.Coord = (*Store)(nil)

// New is a Store on an existing client, which it does not close: Close
// only ends the leases and watches it started.
func New(cli *clientv3.Client, o Options) *Store {
	s := &Store{cli: cli, prefix: o.Prefix, timeout: o.Timeout, explain: o.Explain, ready: o.Ready, stale: o.Stale, lost: o.Lost}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if !strings.HasSuffix(s.prefix, "/") {
		s.prefix += "/"
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	return s
}

// DialConfig is how Dial reaches a cluster.
type DialConfig struct {
	// Endpoints are client URLs of members (https://IP:PORT).
	Endpoints []string
	// TLS is the client side of mutual TLS (nil: plain, for tests only).
	TLS *tls.Config
	// DialTimeout bounds the first connection (0: 5s).
	DialTimeout time.Duration
}

// KeepAliveTime and KeepAliveTimeout are the gRPC pings of a client's
// connection to each member (10 s is gRPC's least; the members accept
// pings every 5 s).
const (
	KeepAliveTime    = 10 * time.Second
	KeepAliveTimeout = 3 * time.Second
)

// Dial connects to the cluster and returns a Store that owns the client:
// a plain client host (one that runs no member) uses this.
func Dial(c DialConfig, o Options) (*Store, error) {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.Endpoints,
		TLS:         c.TLS,
		DialTimeout: c.DialTimeout,
		Logger:      zap.NewNop(),
		// Learn members added or removed after this dial.
		AutoSyncInterval: time.Minute,
		// Ping each member's connection, so that one cut off (no RST:
		// its packets are lost) leaves the balancer within 13 s instead
		// of taking its share of the calls until TCP gives up.
		DialKeepAliveTime:    KeepAliveTime,
		DialKeepAliveTimeout: KeepAliveTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd store: connect to %s: %w", strings.Join(c.Endpoints, ","), err)
	}
	s := New(cli, o)
	s.own = true
	return s, nil
}

// Client is the etcd client the store uses.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Close ends the store's leases' keepalives (the leases themselves run out
// after their TTL, as when the host dies) and its watches, and closes the
// client if Dial made it.
func (s *Store) Close() error {
	s.cancel()
	s.wg.Wait()
	if s.own {
		return s.cli.Close()
	}
	return nil
}

func (s *Store) bucketPrefix(bucket string) string { return s.prefix + bucket + "/" }

func (s *Store) path(bucket, key string) string { return s.prefix + bucket + "/" + key }

// call bounds ctx by the store's timeout and asks for a leader, so that a
// member cut off from its quorum answers at once instead of queueing.
//
// While Options.Ready says no, the context it returns has run out
// already: the call fails at once, as unavailable, and is explained.
func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	timeout := s.timeout
	if s.ready != nil && !s.ready() {
		timeout = 0
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	if s.lost != nil && timeout > 0 {
		lost := s.lost()
		lctx, lcancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-lost:
				lcancel()
			case <-lctx.Done():
			}
		}()
		return clientv3.WithRequireLeader(lctx), func() { lcancel(); cancel() }
	}
	return clientv3.WithRequireLeader(ctx), cancel
}

// reader is the client a read goes to, with its options: the cluster
// (linearizable), or, while the store has no quorum and ctx allows it,
// this host's replica (serializable: its last view), noted in ctx.
// Its context is bounded as call's; noted is to be called once the read
// succeeded.
type read struct {
	cli    *clientv3.Client
	opts   []clientv3.OpOption
	ctx    context.Context
	cancel context.CancelFunc
	noted  func()
}

func (s *Store) reader(ctx context.Context) read {
	if s.stale != nil && s.ready != nil && store.StaleAllowed(ctx) && !s.ready() {
		if local, since := s.stale(); local != nil {
			cctx, cancel := context.WithTimeout(ctx, s.timeout)
			return read{cli: local, opts: []clientv3.OpOption{clientv3.WithSerializable()}, ctx: cctx, cancel: cancel,
				noted: func() { store.NoteStale(ctx, since) }}
		}
	}
	cctx, cancel := s.call(ctx)
	return read{cli: s.cli, ctx: cctx, cancel: cancel, noted: func() {}}
}

// fail turns a client error into the store's: the caller's own context
// ending stays what it is; no leader, no member answering, or the
// store's timeout running out is store.ErrUnavailable.
func (s *Store) fail(parent context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("etcd store: %s: %w", what, perr)
	}
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("etcd store: %s: %w", what, store.ErrLeaseGone)
	}
	// The caller's context is alive: a cancel is call's, the quorum lost.
	if errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
		err = errLostUnderWay
	}
	if Unavailable(err) || err == errLostUnderWay {
		err = fmt.Errorf("etcd store: %s: %w: %v", what, store.ErrUnavailable, err)
		if s.explain != nil {
			err = s.explain(err)
		}
		return err
	}
	return fmt.Errorf("etcd store: %s: %w", what, err)
}

var errLostUnderWay = errors.New("the member lost its leader while the call was under way")

// Unavailable says whether an etcd client error means the cluster cannot
// serve now (rather than that the request was wrong).
func Unavailable(err error) bool {
	for _, e := range []error{
		rpctypes.ErrNoLeader, rpctypes.ErrNotCapable, rpctypes.ErrStopped,
		rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail,
		rpctypes.ErrTimeoutDueToConnectionLost, rpctypes.ErrTimeoutWaitAppliedIndex,
		rpctypes.ErrLeaderChanged, rpctypes.ErrUnhealthy, rpctypes.ErrTooManyRequests,
		context.DeadlineExceeded,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// Get returns the value, or store.ErrNotFound.
func (s *Store) Get(ctx context.Context, bucket, key string) ([]byte, error) {
	it, err := s.GetItem(ctx, bucket, key)
	return it.Value, err
}

// GetItem returns the value with its revision and lease.
func (s *Store) GetItem(ctx context.Context, bucket, key string) (store.Item, error) {
	if err := store.CheckName(bucket, key); err != nil {
		return store.Item{}, err
	}
	rd := s.reader(ctx)
	defer rd.cancel()
	resp, err := rd.cli.Get(rd.ctx, s.path(bucket, key), rd.opts...)
	if err != nil {
		return store.Item{}, s.fail(ctx, "get "+bucket+"/"+key, err)
	}
	rd.noted()
	if len(resp.Kvs) == 0 {
		return store.Item{}, fmt.Errorf("%s/%s: %w", bucket, key, store.ErrNotFound)
	}
	kv := resp.Kvs[0]
	return store.Item{Key: key, Value: kv.Value, Rev: kv.ModRevision, Lease: store.LeaseID(kv.Lease)}, nil
}

// Put writes the value (detached from any lease).
func (s *Store) Put(ctx context.Context, bucket, key string, value []byte) error {
	if err := store.CheckName(bucket, key); err != nil {
		return err
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	_, err := s.cli.Put(cctx, s.path(bucket, key), string(value))
	return s.fail(ctx, "put "+bucket+"/"+key, err)
}

// Delete removes the key; store.ErrNotFound when it is not there.
func (s *Store) Delete(ctx context.Context, bucket, key string) error {
	if err := store.CheckName(bucket, key); err != nil {
		return err
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Delete(cctx, s.path(bucket, key))
	if err != nil {
		return s.fail(ctx, "delete "+bucket+"/"+key, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("%s/%s: %w", bucket, key, store.ErrNotFound)
	}
	return nil
}

// List returns the bucket's entries in key order (empty for a new bucket).
func (s *Store) List(ctx context.Context, bucket string) ([]store.KV, error) {
	items, _, err := s.ListItems(ctx, bucket)
	if err != nil {
		return nil, err
	}
	out := make([]store.KV, len(items))
	for i, it := range items {
		out[i] = store.KV{Key: it.Key, Value: it.Value}
	}
	return out, nil
}

// ListItems reads the bucket a page at a time, every page at the
// revision of the first, so the result is one consistent snapshot.
func (s *Store) ListItems(ctx context.Context, bucket string) ([]store.Item, int64, error) {
	if err := store.CheckBucket(bucket); err != nil {
		return nil, 0, err
	}
	rd := s.reader(ctx)
	defer rd.cancel()
	prefix := s.bucketPrefix(bucket)
	end := clientv3.GetPrefixRangeEnd(prefix)
	var out []store.Item
	var rev int64
	from := prefix
	for {
		opts := append([]clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPage),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}, rd.opts...)
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := rd.cli.Get(rd.ctx, from, opts...)
		if err != nil {
			return nil, 0, s.fail(ctx, "list "+bucket, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			out = append(out, store.Item{Key: string(kv.Key[len(prefix):]), Value: kv.Value,
				Rev: kv.ModRevision, Lease: store.LeaseID(kv.Lease)})
		}
		if !resp.More || len(resp.Kvs) == 0 {
			rd.noted()
			return out, rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Txn applies t atomically when its guards hold. On a failed guard it
// reads the guarded keys in the same transaction, to say which one moved.
func (s *Store) Txn(ctx context.Context, t store.Txn) (int64, error) {
	var cmps []clientv3.Cmp
	var reads []clientv3.Op
	for _, g := range t.If {
		if err := store.CheckName(g.Bucket, g.Key); err != nil {
			return 0, err
		}
		p := s.path(g.Bucket, g.Key)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(p), "=", g.Rev))
		reads = append(reads, clientv3.OpGet(p))
	}
	var ops []clientv3.Op
	for _, o := range t.Then {
		if err := store.CheckName(o.Bucket, o.Key); err != nil {
			return 0, err
		}
		p := s.path(o.Bucket, o.Key)
		switch {
		case o.Delete:
			ops = append(ops, clientv3.OpDelete(p))
		case o.Lease != 0:
			ops = append(ops, clientv3.OpPut(p, string(o.Value), clientv3.WithLease(clientv3.LeaseID(o.Lease))))
		default:
			ops = append(ops, clientv3.OpPut(p, string(o.Value)))
		}
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Txn(cctx).If(cmps...).Then(ops...).Else(reads...).Commit()
	if err != nil {
		return 0, s.fail(ctx, "txn", err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	// The reads ran in the same transaction: one of them shows the guard
	// that failed.
	for i, g := range t.If {
		var rev int64
		if kvs := resp.Responses[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
			rev = kvs[0].ModRevision
		}
		if rev != g.Rev {
			return 0, &store.ConflictError{Guard: g, Actual: rev}
		}
	}
	return 0, fmt.Errorf("etcd store: txn refused, yet every guard held: %w", store.ErrConflict)
}
