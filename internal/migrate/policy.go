package migrate

import (
	"context"
	"fmt"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/ops"
)

// How often the monitor looks at the job.
const pollEvery = 500 * time.Millisecond

// monitor watches a running live migration: it reports progress, sets the
// downtime target, applies the convergence policy, and aborts (the VM keeps
// running here) on cancel, on the timeout, or when nothing moves.
type monitor struct {
	done   chan struct{}
	result chan monitorResult
}

type monitorResult struct {
	last          hypervisor.JobStats
	diskBytes     uint64 // the most disk bytes the copy phase reported
	postcopy      bool
	postcopyPause uint64
	maxThrottle   uint64
	reason        error // why the monitor aborted the job, if it did
}

func (m *monitor) stop() monitorResult {
	close(m.done)
	return <-m.result
}

func durationOr(seconds int, def time.Duration) time.Duration {
	if seconds > 0 {
		return time.Duration(seconds) * time.Second
	}
	return def
}

func (s *Service) startMonitor(ctx context.Context, o *ops.Op, mv *move, flags uint32) *monitor {
	m := &monitor{done: make(chan struct{}), result: make(chan monitorResult, 1)}
	go func() { m.result <- s.watchJob(ctx, o, mv, flags, m.done) }()
	return m
}

// converging tells whether precopy still gains: the memory left at the
// start of each pass must keep shrinking.
type converging struct {
	remaining []uint64 // memory remaining at the start of each pass
	lastIter  uint64
}

func (c *converging) observe(st hypervisor.JobStats) {
	if st.Iteration != c.lastIter {
		c.lastIter = st.Iteration
		c.remaining = append(c.remaining, st.MemRemaining)
	}
}

// stuck: after a few passes, the last pass started with no less than 90%
// of what the pass two before it started with.
func (c *converging) stuck() bool {
	n := len(c.remaining)
	if n < 5 {
		return false
	}
	return c.remaining[n-1]*10 >= c.remaining[n-3]*9
}

func (s *Service) watchJob(ctx context.Context, o *ops.Op, mv *move, flags uint32, done chan struct{}) monitorResult {
	var res monitorResult
	req := mv.req
	name := mv.m.Name
	bg := context.Background()
	maxDowntime := uint64(DefaultMaxDowntime.Milliseconds())
	if req.MaxDowntimeMs > 0 {
		maxDowntime = uint64(req.MaxDowntimeMs)
	}
	timeout := durationOr(req.TimeoutSeconds, DefaultTimeout)
	stall := durationOr(req.ProgressTimeoutSeconds, DefaultProgressTimeout)
	postcopyAfter := durationOr(req.PostcopyAfterSeconds, DefaultPostcopyAfter)
	postcopyAllowed := flags&hypervisor.MigratePostcopy != 0

	start := time.Now()
	lastMove := time.Now()
	var lastData uint64
	var lastKeepalive time.Time
	downtimeSet := false
	aborted := false
	var conv converging
	var postcopyAt time.Time
	dropped := make(chan error, 1)

	abort := func(reason error) {
		if aborted {
			return
		}
		if res.postcopy {
			// Postcopy cannot go back: the guest already runs there.
			s.log.Warn("cannot abort a migration in postcopy", "vm", name, "reason", reason)
			return
		}
		aborted = true
		res.reason = reason
		s.log.Warn("aborting the migration", "vm", name, "reason", reason)
		// Not inline: with a dead link the abort can take a while, and the
		// loop keeps reporting meanwhile.
		go func() {
			actx, cancel := context.WithTimeout(bg, 2*time.Minute)
			defer cancel()
			if err := s.hv.AbortJob(actx, name); err != nil {
				s.log.Warn("abort migration job", "vm", name, "err", err)
			} else {
				s.log.Info("migration job aborted", "vm", name)
			}
		}()
	}
	// Poll fast until the downtime target is set: a small VM's migration
	// can be over before the first regular poll, with QEMU's default target.
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	slow := false
	for {
		select {
		case <-done:
			return res
		case <-ctx.Done():
			abort(ctx.Err())
		case <-t.C:
		}
		// Fast until memory moves too: a small disk's copy phase can be
		// over in well under a regular poll.
		if downtimeSet && !slow && res.last.MemProcessed > 0 {
			t.Reset(pollEvery)
			slow = true
		}
		if time.Since(lastKeepalive) >= s.cfg.Timeouts.Keepalive {
			lastKeepalive = time.Now()
			go func() {
				kctx, cancel := context.WithTimeout(bg, 5*time.Second)
				defer cancel()
				// A refusal (not a network error) means the destination
				// dropped the move, e.g. its libvirtd died.
				if err := mv.peer.MigrationKeepalive(kctx, mv.id); api.Status(err) != 0 {
					select {
					case dropped <- err:
					default:
					}
				}
			}()
		}
		select {
		case err := <-dropped:
			abort(api.StatusErrorf(502, "%s dropped the migration (%v); it was aborted and vm %s keeps running on %s", req.To, err, name, s.cfg.Self))
		default:
		}
		if !downtimeSet {
			dctx, cancel := context.WithTimeout(bg, 5*time.Second)
			if err := s.hv.SetMaxDowntime(dctx, name, maxDowntime); err == nil {
				downtimeSet = true
			}
			cancel()
			if !downtimeSet && time.Since(start) < 2*time.Second {
				continue // the job is not there yet
			}
		}
		// A stats call can hang while QEMU waits on a dead link: bound it,
		// and let a missing answer count as no progress.
		sctx, cancel := context.WithTimeout(bg, 5*time.Second)
		st, err := s.hv.JobStats(sctx, name, false)
		cancel()
		if err == nil && st.Active {
			res.last = st
			res.maxThrottle = max(res.maxThrottle, st.AutoConverge)
			res.diskBytes = max(res.diskBytes, st.DiskProcessed)
			if res.postcopy {
				// Postcopy's switchover pause is only seen while it runs.
				res.postcopyPause = max(res.postcopyPause, st.DowntimeMs)
			}
			if st.DataProcessed > lastData {
				lastData, lastMove = st.DataProcessed, time.Now()
			}
			conv.observe(st)
			o.Progress(progressMessage(st, res.postcopy), int64(st.DataProcessed), int64(st.DataTotal), "bytes")
		}

		elapsed := time.Since(start)
		switch {
		case aborted:
		case time.Since(lastMove) > stall:
			abort(api.StatusErrorf(504, "no data moved for %s (is the link to %s down?); the migration was aborted and vm %s keeps running on %s",
				stall, req.To, name, s.cfg.Self))
		case elapsed > timeout && !res.postcopy:
			abort(api.StatusErrorf(504, "the migration did not finish within %s (policy %s); it was aborted and vm %s keeps running on %s (try --policy auto or a longer --timeout)",
				timeout, req.Policy, name, s.cfg.Self))
		}
		if aborted || res.postcopy || !postcopyAllowed {
			continue
		}
		switch req.Policy {
		case api.PolicyPostcopy:
			if st.Iteration >= 2 {
				s.switchToPostcopy(o, name, st, &res, &postcopyAt)
			}
		case api.PolicyAuto:
			if elapsed > postcopyAfter || conv.stuck() {
				s.switchToPostcopy(o, name, st, &res, &postcopyAt)
			}
		}
	}
}

func (s *Service) switchToPostcopy(o *ops.Op, name string, st hypervisor.JobStats, res *monitorResult, at *time.Time) {
	if err := s.hv.StartPostcopy(context.Background(), name); err != nil {
		s.log.Warn("switch to postcopy", "vm", name, "err", err)
		return
	}
	res.postcopy = true
	*at = time.Now()
	s.log.Info("migration switched to postcopy", "vm", name, "iteration", st.Iteration,
		"dirtyBps", st.DirtyRate*max(st.PageSize, 4096), "bps", st.MemBps, "throttle", st.AutoConverge)
	o.Progress("switching to postcopy", int64(st.DataProcessed), int64(st.DataTotal), "bytes")
}

// progressMessage is the op's progress line: phase, pass, rates, what is
// left and when it should be done.
func progressMessage(st hypervisor.JobStats, postcopy bool) string {
	dirty := st.DirtyRate * max(st.PageSize, 4096)
	phase := "precopy"
	if postcopy {
		phase = "postcopy"
	}
	eta := ""
	if st.MemBps > 0 {
		eta = fmt.Sprintf(", ETA %ds", st.DataRemaining/st.MemBps)
	}
	return fmt.Sprintf("%s pass %d: %s/s, guest dirtying %s/s, %s left%s", phase, st.Iteration,
		api.Size(st.MemBps).Human(), api.Size(dirty).Human(), api.Size(st.DataRemaining).Human(), eta)
}
