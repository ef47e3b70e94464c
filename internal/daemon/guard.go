package daemon

import (
	"path/filepath"
	"sync"
	"time"

	"github.com/godwit-project/godwit/internal/fenceguard"
)

// The fence guard (internal/fenceguard): while this host is in a cluster
// the daemon keeps a guard process, fed after each lease renewal the
// store accepted, that fences this host's HA VMs by itself when the
// feeds stop (the daemon hung, stopped or killed). A clean stop that
// froze the host stands it down; a stop that could not (cut off, or the
// mark not written) leaves it to fire, since the others will restart
// the VMs. A daemon started again waits for a guard its predecessor
// left to fire or go before it joins the cluster.

// guardState is the daemon's part: its feeder and the last error told.
type guardState struct {
	mu      sync.Mutex
	feeder  *fenceguard.Feeder
	lastErr string
}

func (d *Daemon) guardPIDFile() string { return filepath.Join(d.cfg.StateDir, "fence-guard.pid") }

// guardFeeder is the daemon's feeder (nil: no guard binary configured,
// as in the daemon's unit tests).
func (d *Daemon) guardFeeder() *fenceguard.Feeder {
	d.guard.mu.Lock()
	defer d.guard.mu.Unlock()
	if d.guard.feeder == nil && d.cfg.FenceGuard != "" {
		d.guard.feeder = &fenceguard.Feeder{Exe: d.cfg.FenceGuard, PIDFile: d.guardPIDFile(),
			Log: filepath.Join(d.cfg.StateDir, "fence-guard.log"), FencedFile: d.fencedFile()}
	}
	return d.guard.feeder
}

// feedGuard is the cluster's Renewed hook: a renewal went through, with
// left of fenceAfter to go.
func (d *Daemon) feedGuard(left time.Duration, vms []string) {
	f := d.guardFeeder()
	if f == nil {
		return
	}
	started := f.PID() == 0
	err := f.Feed(left, vms)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	d.guard.mu.Lock()
	told := d.guard.lastErr == msg
	d.guard.lastErr = msg
	d.guard.mu.Unlock()
	switch {
	case err != nil && !told:
		d.log.Error("HA: cannot feed the fence guard: if this daemon hangs, nothing fences its HA VMs", "err", err)
	case err == nil && started && f.PID() != 0:
		d.log.Info("HA: fence guard started", "pid", f.PID(), "deadline", left.Round(time.Millisecond), "vms", vms)
	}
}

// standDownGuard ends the guard at a clean stop that froze this host.
func (d *Daemon) standDownGuard(frozen bool) {
	f := d.guardFeeder()
	if f == nil || f.PID() == 0 {
		return
	}
	if !frozen {
		f.Stop()
		d.log.Warn("HA: this host is not marked frozen; the fence guard stops its HA VMs at its deadline, before other hosts may restart them", "guard", f.PID())
		return
	}
	if err := f.StandDown(2 * time.Second); err != nil {
		d.log.Error("HA: the fence guard did not stand down", "err", err)
	}
}

// awaitOldGuard waits for a guard an earlier daemon of this state dir
// left running (it died uncleanly) to fire or go: it may stop this
// host's HA VMs any moment until its deadline, even those this daemon
// starts again.
func (d *Daemon) awaitOldGuard() {
	what, err := fenceguard.AwaitPredecessor(d.guardPIDFile(), 30*time.Second)
	if err != nil {
		d.log.Error("HA: an earlier daemon's fence guard", "err", err)
	} else if what != "" {
		d.log.Warn("HA: " + what)
	}
}
