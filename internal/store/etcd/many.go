package etcd

import (
	"context"
	"fmt"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/godwit-project/godwit/internal/store"
)

// Range is one read of ListRanges: every key under Prefix (relative to
// the store's prefix; it ends in '/'), with its value unless KeysOnly.
type Range struct {
	Prefix   string
	KeysOnly bool
}

// txnReads is how many ranges one read transaction carries: etcd refuses
// a transaction of more than its --max-txn-ops operations (128 by
// default).
const txnReads = 100

// ListRanges reads every range in read-only transactions of txnReads
// ranges each, sent at once: a read of many small buckets (one bucket of
// each host's namespace) in a few round trips instead of one each. Each
// transaction is one linearizable read; they are not of one revision.
// The items of ranges[i] are out[i], their keys relative to its Prefix,
// sorted. A range is read whole, in one answer, unpaged: this is for
// buckets known to be small, not for one that can grow without bound.
func (s *Store) ListRanges(ctx context.Context, ranges []Range) ([][]store.Item, error) {
	for _, r := range ranges {
		if !strings.HasSuffix(r.Prefix, "/") {
			return nil, fmt.Errorf("etcd store: range %q does not end in '/'", r.Prefix)
		}
	}
	out := make([][]store.Item, len(ranges))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for from := 0; from < len(ranges); from += txnReads {
		chunk := ranges[from:min(from+txnReads, len(ranges))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.listChunk(ctx, chunk, out[from:from+len(chunk)]); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return out, nil
}

// listChunk reads ranges in one read-only transaction into out.
func (s *Store) listChunk(ctx context.Context, ranges []Range, out [][]store.Item) error {
	rd := s.reader(ctx)
	defer rd.cancel()
	ops := make([]clientv3.Op, len(ranges))
	for i, r := range ranges {
		p := s.prefix + r.Prefix
		opts := append([]clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(p)),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}, rd.opts...)
		if r.KeysOnly {
			opts = append(opts, clientv3.WithKeysOnly())
		}
		ops[i] = clientv3.OpGet(p, opts...)
	}
	resp, err := rd.cli.Txn(rd.ctx).Then(ops...).Commit()
	if err != nil {
		return s.fail(ctx, "list "+ranges[0].Prefix+"...", err)
	}
	for i, r := range resp.Responses {
		p := len(s.prefix) + len(ranges[i].Prefix)
		for _, kv := range r.GetResponseRange().Kvs {
			out[i] = append(out[i], store.Item{Key: string(kv.Key[p:]), Value: kv.Value,
				Rev: kv.ModRevision, Lease: store.LeaseID(kv.Lease)})
		}
	}
	rd.noted()
	return nil
}
