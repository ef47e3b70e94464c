package migrate

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/ops"
)

// Placer picks the destinations of a drain: a cluster's placement.
type Placer interface {
	// Targets are the hosts that can take the VM, best first; an error
	// says why none can.
	Targets(ctx context.Context, vm string) ([]string, error)
	// Reserve holds room for the VM on host before it moves there: a 409
	// when host has none left (another VM took it first).
	Reserve(ctx context.Context, host, vm string) error
}

// Evacuate moves every running VM off this host, N at a time, and reports
// what moved where and what did not, and why. Each move is an operation of
// its own (godwit op list shows them); the evacuation is one more.
func (s *Service) Evacuate(ctx context.Context, req api.EvacuateRequest) (api.Operation, error) {
	return s.evacuation(ctx, req, nil)
}

// Drain moves every VM off this host, running ones live and stopped ones
// cold, each to the host p picks for it (with room reserved there first),
// N at a time, and reports as Evacuate does.
func (s *Service) Drain(ctx context.Context, req api.EvacuateRequest, p Placer) (api.Operation, error) {
	if req.To != "" {
		return api.Operation{}, api.BadRequest("to: a drain moves each VM where placement picks")
	}
	return s.evacuation(ctx, req, p)
}

func (s *Service) evacuation(ctx context.Context, req api.EvacuateRequest, p Placer) (api.Operation, error) {
	if req.Parallel < 0 || req.Parallel > 16 {
		return api.Operation{}, api.BadRequest("parallel: %d is not between 1 and 16", req.Parallel)
	}
	if req.Parallel == 0 {
		req.Parallel = 1
	}
	if req.To == s.cfg.Self {
		return api.Operation{}, api.BadRequest("to: %s is the host being evacuated", req.To)
	}
	switch {
	case req.To != "":
		if _, err := s.peers.Client(ctx, req.To); err != nil {
			return api.Operation{}, err
		}
	case p == nil:
		names, err := s.peers.Names(ctx)
		if err != nil {
			return api.Operation{}, err
		}
		if len(names) == 0 {
			return api.Operation{}, api.Conflict("this host has no peers to evacuate to (godwit host add)")
		}
	}
	vms, err := s.vms.List(ctx)
	if err != nil {
		return api.Operation{}, err
	}
	var todo []string
	for _, v := range vms {
		if v.Managed && (v.State == api.VMRunning || v.State == api.VMPaused || (p != nil && v.State == api.VMStopped)) {
			todo = append(todo, v.Name)
		}
	}
	kind := "host.evacuate"
	if p != nil {
		kind = "host.drain"
	}
	return s.ops.Start(kind, "host/"+s.cfg.Self, func(ctx context.Context, o *ops.Op) error {
		rep := s.evacuate(ctx, o, todo, req, p)
		o.SetResult(rep)
		if len(rep.Failed) > 0 {
			return api.Conflict("%d of %d VMs did not move: %s", len(rep.Failed), len(todo), missSummary(rep.Failed))
		}
		return nil
	}), nil
}

func missSummary(m []api.EvacuationMiss) string {
	out := ""
	for i, x := range m {
		if i > 0 {
			out += "; "
		}
		out += x.VM + ": " + x.Reason
	}
	return out
}

func (s *Service) evacuate(ctx context.Context, o *ops.Op, todo []string, req api.EvacuateRequest, p Placer) api.EvacuationReport {
	var mu sync.Mutex
	rep := api.EvacuationReport{Moved: []api.MigrationReport{}, Failed: []api.EvacuationMiss{}}
	done := 0
	work := make(chan string)
	var wg sync.WaitGroup
	for i := 0; i < req.Parallel; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				moved, miss := s.evacuateOne(ctx, name, req, p)
				mu.Lock()
				if miss != nil {
					rep.Failed = append(rep.Failed, *miss)
				} else {
					rep.Moved = append(rep.Moved, moved)
				}
				done++
				o.Progress(fmt.Sprintf("%d of %d VMs handled (%d moved)", done, len(todo), len(rep.Moved)), int64(done), int64(len(todo)), "vms")
				mu.Unlock()
			}
		}()
	}
	for _, name := range todo {
		select {
		case work <- name:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	sort.Slice(rep.Moved, func(i, j int) bool { return rep.Moved[i].VM < rep.Moved[j].VM })
	sort.Slice(rep.Failed, func(i, j int) bool { return rep.Failed[i].VM < rep.Failed[j].VM })
	return rep
}

// evacuateOne moves one VM: to req.To, to the first host p picks that
// still has room, or to the first peer, by free memory, that accepts it.
func (s *Service) evacuateOne(ctx context.Context, name string, req api.EvacuateRequest, p Placer) (api.MigrationReport, *api.EvacuationMiss) {
	if err := ctx.Err(); err != nil {
		return api.MigrationReport{}, &api.EvacuationMiss{VM: name, Reason: "cancelled"}
	}
	targets := []string{req.To}
	switch {
	case p != nil:
		var err error
		if targets, err = p.Targets(ctx, name); err != nil {
			return api.MigrationReport{}, &api.EvacuationMiss{VM: name, Reason: err.Error()}
		}
	case req.To == "":
		targets = s.peersByFreeMemory(ctx)
	}
	var reasons []string
	for _, to := range targets {
		if p != nil {
			if err := p.Reserve(ctx, to, name); err != nil {
				reasons = append(reasons, to+": "+err.Error())
				continue
			}
		}
		mr := req.MigrateRequest
		mr.To, mr.Mode = to, ""
		op, err := s.Migrate(ctx, name, mr)
		if err != nil {
			reasons = append(reasons, to+": "+err.Error())
			continue
		}
		final, err := s.ops.Wait(ctx, op.ID)
		if err != nil {
			return api.MigrationReport{}, &api.EvacuationMiss{VM: name, To: to, Reason: err.Error()}
		}
		if final.State != api.OpSucceeded {
			// It started to move and failed: it runs here again; say why
			// rather than trying the next host blindly.
			return api.MigrationReport{}, &api.EvacuationMiss{VM: name, To: to, Reason: final.Error}
		}
		var r api.MigrationReport
		_ = decodeJSON(final.Result, &r)
		return r, nil
	}
	if len(reasons) == 0 {
		reasons = append(reasons, "no reachable peer")
	}
	return api.MigrationReport{}, &api.EvacuationMiss{VM: name, Reason: joinProblems(reasons)}
}

// peersByFreeMemory lists the reachable peers, most free memory first.
func (s *Service) peersByFreeMemory(ctx context.Context) []string {
	names, err := s.peers.Names(ctx)
	if err != nil {
		return nil
	}
	type cand struct {
		name string
		free api.Size
	}
	var cs []cand
	for _, n := range names {
		c, err := s.peers.Client(ctx, n)
		if err != nil {
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		h, err := c.Host(hctx)
		cancel()
		c.Close()
		if err == nil {
			cs = append(cs, cand{n, h.MemoryFree})
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].free > cs[j].free })
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}
