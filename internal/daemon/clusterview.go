package daemon

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/vm"
)

// askTimeout bounds what a host of a cluster asks each other host for
// one listing.
const askTimeout = 5 * time.Second

// answer is one host's answer, or why there is none.
type answer[T any] struct {
	val T
	err error
}

// askOthers asks every other host of the cluster, in parallel and each
// within askTimeout, over the peers' mutual TLS ({} in no cluster).
func askOthers[T any](ctx context.Context, d *Daemon, ask func(ctx context.Context, c *client.Client, host string) (T, error)) map[string]answer[T] {
	out := map[string]answer[T]{}
	n := d.clusterNode()
	if n == nil {
		return out
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range n.Hosts() {
		if h.Name == d.cfg.Name {
			continue
		}
		if !h.Removed.IsZero() {
			mu.Lock()
			out[h.Name] = answer[T]{err: errors.New("it was removed from the cluster (cluster remove)")}
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var a answer[T]
			c, err := d.peers.Client(ctx, h.Name)
			if err == nil {
				cctx, cancel := context.WithTimeout(ctx, askTimeout)
				a.val, err = ask(cctx, c, h.Name)
				cancel()
				c.Close()
			}
			a.err = err
			mu.Lock()
			out[h.Name] = a
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// otherHostsVMs are the VMs of the other hosts of the cluster, each as
// its host says; for a host that does not answer, what its records say,
// in state unknown with the reason.
func (d *Daemon) otherHostsVMs(ctx context.Context) []api.VM {
	var out []api.VM
	n := d.clusterNode()
	for host, a := range askOthers(ctx, d, func(ctx context.Context, c *client.Client, host string) ([]api.VM, error) {
		return c.ListVMsOf(ctx, host)
	}) {
		if a.err == nil {
			out = append(out, a.val...)
			continue
		}
		for _, raw := range n.VMs(host) {
			v, err := vm.RecordView(raw, host)
			if err != nil {
				continue
			}
			v.Reason = "host " + host + " does not answer: " + a.err.Error()
			out = append(out, v)
		}
	}
	return out
}

// otherHostsOps are the operations of the other hosts that answer.
func (d *Daemon) otherHostsOps(ctx context.Context, f client.OperationFilter) []api.Operation {
	var out []api.Operation
	for _, a := range askOthers(ctx, d, func(ctx context.Context, c *client.Client, host string) ([]api.Operation, error) {
		hf := f
		hf.Host = host
		return c.ListOperations(ctx, hf)
	}) {
		out = append(out, a.val...)
	}
	return out
}
