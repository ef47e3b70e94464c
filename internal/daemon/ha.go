package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/cluster"
	"github.com/godwit-project/godwit/internal/fenceguard"
	"github.com/godwit-project/godwit/internal/vm"
)

// HA (internal/cluster decides; the daemon acts on this host): a fence
// destroys this host's HA VMs and notes them in STATE/cluster/fenced.json;
// a claim starts a lost host's VM here; a rejoin takes back the fenced VMs
// whose records are still here (and starts those that should run) and
// drops the domains of those that moved.

// wireHA gives n the daemon's HA hooks.
func (d *Daemon) wireHA(n *cluster.Node) {
	n.SetHA(cluster.HAHooks{Fence: d.haFence, Restart: d.haRestart, Rejoined: d.haRejoined, Renewed: d.feedGuard})
}

func (d *Daemon) fencedFile() string { return filepath.Join(d.clusterDir(), "fenced.json") }

func (d *Daemon) fencedVMs() []string { return fenceguard.ReadFenced(d.fencedFile()) }

func (d *Daemon) setFencedVMs(names []string) {
	if err := fenceguard.WriteFenced(d.fencedFile(), names); err != nil {
		d.log.Error("HA: cannot note the fenced VMs", "vms", names, "err", err)
	}
}

// haFence destroys the HA VMs named, now: through libvirt, else by
// killing their QEMU.
func (d *Daemon) haFence(ctx context.Context, names []string, why string) {
	t0 := time.Now()
	d.setFencedVMs(append(d.fencedVMs(), names...))
	for _, name := range names {
		err := d.vms.Fence(ctx, name)
		if err != nil {
			d.log.Error("HA fence: libvirt did not destroy the VM; killing its QEMU", "vm", name, "err", err)
			_, err = fenceguard.KillQEMU(fenceguard.LibvirtPIDDir, name)
		}
		if err != nil {
			d.log.Error("HA fence: the VM may still run", "vm", name, "err", err)
		}
	}
	d.log.Error("HA fence: stopped this host's HA VMs", "vms", names, "why", why, "took", time.Since(t0).Round(time.Millisecond))
}

// haRestart starts here a VM this host claimed from a lost host.
func (d *Daemon) haRestart(ctx context.Context, name, from string) {
	for try := 0; ; try++ {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := d.host.ensure(cctx)
		var op api.Operation
		if err == nil {
			op, err = d.vms.RestartHere(cctx, name, from)
		}
		cancel()
		if err == nil {
			d.log.Warn("HA: restarting a VM of a lost host here", "vm", name, "from", from, "operation", op.ID)
			return
		}
		if try == 10 || ctx.Err() != nil {
			d.log.Error("HA: cannot restart a VM of a lost host here; godwit vm start starts it", "vm", name, "from", from, "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// haRejoined settles, once this host holds a lease again, what a fence
// (or a stop while cut off) left: a fenced VM whose record is still here
// is taken back (its record rewritten under this host's lease, which
// refuses any claim made from the old one) and started if it should run;
// a domain of this daemon's whose VM another host owns now is dropped.
func (d *Daemon) haRejoined(ctx context.Context) {
	d.retry("settle the HA VMs after rejoining the cluster", func(ctx context.Context) error {
		n := d.clusterNode()
		if n == nil {
			return nil
		}
		if err := d.host.ensure(ctx); err != nil {
			return err
		}
		fenced := d.fencedVMs()
		doms, err := d.vms.Domains(ctx)
		if err != nil {
			return err
		}
		var left []string
		for _, name := range slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(fenced), doms...)))) {
			if err := d.settleHA(ctx, n, name, slices.Contains(fenced, name)); err != nil {
				d.log.Warn("HA: cannot settle a VM after rejoining", "vm", name, "err", err)
				if slices.Contains(fenced, name) {
					left = append(left, name)
				}
			}
		}
		d.setFencedVMs(left)
		if len(left) > 0 {
			return fmt.Errorf("%d fenced VMs left to settle", len(left))
		}
		return nil
	})
}

func (d *Daemon) settleHA(ctx context.Context, n *cluster.Node, name string, fenced bool) error {
	has, err := d.vms.Has(ctx, name)
	if err != nil {
		return err
	}
	if has && !fenced {
		return nil // an ordinary VM of this host
	}
	if has {
		ok, err := n.Reown(ctx, name)
		if err != nil {
			return err
		}
		if ok {
			raw, err := n.Store().Get(ctx, "vms", name)
			if err != nil {
				return err
			}
			if _, run, _ := vm.RecordInfo(raw); run {
				if v, err := d.vms.Get(ctx, name); err == nil && v.State != api.VMRunning {
					if _, err := d.vms.Start(ctx, name); err != nil {
						return err
					}
					d.log.Warn("HA: took back a fenced VM (no other host had restarted it) and started it again", "vm", name)
				}
			}
			return nil
		}
	}
	owner, err := n.Owner(ctx, name)
	if err != nil {
		return err
	}
	if owner == "" || owner == d.cfg.Name {
		return nil // no other host has it: not ours to drop
	}
	d.log.Warn("HA: a VM of this host moved to another while it was cut off; dropping its domain here", "vm", name, "owner", owner)
	return d.vms.DropStale(ctx, name)
}
