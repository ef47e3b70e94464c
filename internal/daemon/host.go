package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/accel"
	"github.com/godwit-project/godwit/internal/buildinfo"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/store"
)

// hostState brings the host up on libvirt: the disk pool, the accelerator
// decision and the reconcile of interrupted work. It runs whenever libvirt
// is reachable and something is not done yet, so a daemon started before
// libvirtd catches up by itself.
type hostState struct {
	d *Daemon

	up sync.Mutex // held while bringing up, so it runs once at a time

	mu         sync.Mutex // guards the fields below
	accel      *accel.Result
	poolReady  bool
	reconciled bool
	netsUp     bool
}

func (h *hostState) ready() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.poolReady && h.accel != nil && h.reconciled && h.netsUp
}

func (h *hostState) set(f func()) {
	h.mu.Lock()
	f()
	h.mu.Unlock()
}

func newHostState(d *Daemon) *hostState { return &hostState{d: d} }

// ensure does what is not done yet; it returns at once when all is.
func (h *hostState) ensure(ctx context.Context) error {
	if h.ready() {
		return nil
	}
	h.up.Lock()
	defer h.up.Unlock()
	h.mu.Lock()
	poolReady, haveAccel, reconciled := h.poolReady, h.accel != nil, h.reconciled
	h.mu.Unlock()
	d := h.d
	if !poolReady {
		problems, err := d.unreachable(ctx)
		if err != nil {
			return err
		}
		if len(problems) > 0 {
			return errUnreachable(problems)
		}
		info, err := d.hv.EnsurePool(ctx, hypervisor.Pool{Name: d.cfg.Pool.Name, Type: "dir", Path: d.cfg.Pool.Path})
		if err != nil {
			return err
		}
		d.log.Info("storage pool ready", "pool", info.Name, "path", info.Path, "available", api.Size(info.Available).Human())
		h.set(func() { h.poolReady = true })
	}
	if !haveAccel {
		r, err := h.decideAccel(ctx)
		if err != nil {
			return err
		}
		h.set(func() { h.accel = &r })
		if w := r.Warning(); w != "" {
			d.log.Warn(w)
		} else {
			d.log.Info("accelerator chosen", "accel", r.Chosen, "reason", r.Reason)
		}
	}
	if !reconciled {
		if err := d.vms.Reconcile(ctx); err != nil {
			return err
		}
		if err := d.vms.PruneBootFiles(ctx); err != nil {
			d.log.Warn("removing unused boot files", "err", err)
		}
		if err := d.migrations.Recover(ctx); err != nil {
			return err
		}
		h.set(func() { h.reconciled = true })
	}
	h.ensureNetworks(ctx)
	return nil
}

// decideAccel reuses the last decision when the host setup is the same
// (the probe boots take seconds), else probes again.
func (h *hostState) decideAccel(ctx context.Context) (accel.Result, error) {
	d := h.d
	info, err := d.hv.HostInfo(ctx)
	if err != nil {
		return accel.Result{}, err
	}
	fp := accel.Fingerprint(info)
	if cached, err := store.GetJSON[accel.Result](ctx, d.store, "meta", "accel"); err == nil &&
		cached.Setting == d.cfg.Accel && cached.Fingerprint == fp {
		return cached, nil
	}
	if d.cfg.Accel == accel.Auto {
		d.log.Info("probing whether KVM really works (a few seconds)")
	}
	r, err := accel.Detect(ctx, d.cfg.Accel, d.hv, d.probeDir())
	if err != nil {
		return r, err
	}
	if !r.ProbeFailed {
		if err := store.PutJSON(ctx, d.store, "meta", "accel", r); err != nil {
			return r, err
		}
	}
	return r, nil
}

// virtType is the libvirt domain type new VMs get.
func (h *hostState) virtType(ctx context.Context) (string, error) {
	if err := h.ensure(ctx); err != nil {
		return "", err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.accel.VirtType(), nil
}

// keepUp retries ensure until it succeeds, and again after libvirt comes
// back from an outage (its pool may need starting).
func (h *hostState) keepUp(ctx context.Context) {
	wasDown := false
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := h.d.hv.Ping(cctx)
		if err == nil && wasDown {
			// libvirt was away: its pool and networks may need starting,
			// and work it cut off (moves, creates) needs finishing or undoing.
			h.set(func() { h.poolReady, h.netsUp, h.reconciled = false, false, false })
			h.d.nets.Reset()
		}
		wasDown = err != nil
		if err == nil {
			if err := h.ensure(cctx); err != nil && !errors.Is(err, context.Canceled) {
				h.d.log.Warn("bringing the host up", "err", err)
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// describe reports the host for GET /v1/host.
func (h *hostState) describe(ctx context.Context) api.Host {
	d := h.d
	out := api.Host{
		Name: d.cfg.Name, StateDir: d.cfg.StateDir, Pool: d.cfg.Pool.Name, PoolPath: d.cfg.Pool.Path, NetworkPrefix: d.cfg.Network.Prefix,
		Version: buildinfo.String(), Accel: api.Accel{Setting: d.cfg.Accel},
		Libvirt: api.Libvirt{URI: d.cfg.Libvirt}, URL: d.cfg.Advertise,
	}
	info, err := d.hv.HostInfo(ctx)
	if err != nil {
		out.Libvirt.Error = err.Error()
		out.Warnings = append(out.Warnings, "libvirt is not reachable: "+err.Error())
	} else {
		out.Libvirt.Connected = true
		out.Libvirt.Version, out.Libvirt.QEMUVersion = info.LibvirtVersion, info.QEMUVersion
		out.Hostname, out.CPUs, out.CPUModel = info.Hostname, info.CPUs, info.CPUModel
		out.Memory, out.MemoryFree = api.Size(info.MemoryBytes), api.Size(info.FreeBytes)
	}
	out.Load1 = loadAverage()
	h.mu.Lock()
	if h.accel != nil {
		out.Accel.Chosen, out.Accel.Reason = h.accel.Chosen, h.accel.Reason
		if w := h.accel.Warning(); w != "" {
			out.Warnings = append(out.Warnings, w)
		}
	} else if out.Libvirt.Connected {
		out.Accel.Reason = "being decided (the first VM create waits for it)"
	} else {
		out.Accel.Reason = "not decided yet (needs libvirt)"
	}
	h.mu.Unlock()
	out.Warnings = append(out.Warnings, d.missingPrograms()...)
	if err := d.nets.UpError(); err != nil {
		out.Warnings = append(out.Warnings, "networks are not up: "+err.Error())
	}
	if out.Libvirt.Connected {
		if problems, err := d.unreachable(ctx); err == nil {
			out.Warnings = append(out.Warnings, problems...)
		}
	}
	if n := d.clusterNode(); n != nil {
		ready, msg := n.Health(ctx)
		out.Cluster = n.Role() + " in cluster " + n.ID() + ": " + msg
		if !ready {
			out.Warnings = append(out.Warnings, msg)
		}
		if fenced, at, why := n.Fenced(); fenced {
			out.Warnings = append(out.Warnings, fmt.Sprintf("this host fenced (stopped) its HA VMs at %s: %s; it takes back those no other host restarted once it holds a lease again", at.Format(time.RFC3339), why))
		}
	}
	if n, err := d.vms.Count(ctx); err == nil {
		out.VMs = n
	}
	return out
}

// loadAverage is the first field of /proc/loadavg (0 when unreadable).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b) + " 0")[0], 64)
	return f
}
