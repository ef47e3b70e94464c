package daemon

import (
	"context"
	"net/http"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/tune"
	"github.com/godwit-project/godwit/internal/vm"
)

// The host tuning check (godwit host tune): read-only for Read callers,
// apply and revert for Admin. The files are the host's, under
// Config.TuneRoot ("/"); the record of what apply replaced is in the
// state directory.

func (d *Daemon) tuneRoutes() []route {
	return []route{
		{Read, op("get-host-tune", http.MethodGet, "/v1/host/tune", "Check this host's settings for VMs against a tuning profile", "host"), handle(d.getHostTune)},
		{Admin, op("apply-host-tune", http.MethodPost, "/v1/host/tune/apply", "Set a tuning profile's runtime settings (and persist them)", "host"), handle(d.applyHostTune)},
		{Admin, op("revert-host-tune", http.MethodPost, "/v1/host/tune/revert", "Put back the settings host tune apply changed", "host"), handle(d.revertHostTune)},
	}
}

func (d *Daemon) tuneHost() tune.Host {
	root := d.cfg.TuneRoot
	if root == "" {
		root = "/"
	}
	return tune.Host{Root: root}
}

// tuneInputs is what the daemon knows for the check: its accelerator
// decision, its VMs' memory and huge pages, its pool.
func (d *Daemon) tuneInputs(ctx context.Context) tune.Inputs {
	in := tune.Inputs{Pools: []string{d.cfg.Pool.Path}}
	_ = d.host.ensure(ctx) // the accelerator decision, when libvirt answers
	d.host.mu.Lock()
	if a := d.host.accel; a != nil {
		in.AccelChosen, in.AccelReason = a.Chosen, a.Reason
	}
	d.host.mu.Unlock()
	if info, err := d.hv.HostInfo(ctx); err == nil {
		in.HostMemory = info.MemoryBytes
	}
	if vms, err := d.vms.List(ctx); err == nil {
		for _, v := range vms {
			if v.Spec == nil {
				continue
			}
			in.VMMemory += uint64(api.MaxMemoryOf(*v.Spec))
			if hp := v.Spec.Hugepages; hp != nil && (hp.Reserved == nil || *hp.Reserved) && vm.HugepageSizeOf(*v.Spec) == 2*api.MiB {
				in.Hugepages += int(api.MaxMemoryOf(*v.Spec) / (2 * api.MiB))
			}
		}
	}
	return in
}

type tuneInput struct {
	Profile string `query:"profile" doc:"The profile (default virtual-host)."`
}

func (d *Daemon) getHostTune(ctx context.Context, in *tuneInput) (*struct{ Body api.TuneReport }, error) {
	rep, err := d.tuneHost().Check(in.Profile, d.tuneInputs(ctx))
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.TuneReport }{rep}, nil
}

func (d *Daemon) applyHostTune(ctx context.Context, in *struct{ Body api.TuneRequest }) (*struct{ Body api.TuneResult }, error) {
	res, err := d.tuneHost().Apply(d.cfg.StateDir, d.tuneInputs(ctx), in.Body)
	if err != nil {
		return nil, err
	}
	d.log.Info("host tune applied", "profile", in.Body.Profile, "changes", len(res.Changes), "files", len(res.Files), "dryRun", in.Body.DryRun)
	return &struct{ Body api.TuneResult }{res}, nil
}

func (d *Daemon) revertHostTune(ctx context.Context, _ *struct{}) (*struct{ Body api.TuneResult }, error) {
	res, err := d.tuneHost().Revert(d.cfg.StateDir)
	if err != nil {
		return nil, err
	}
	d.log.Info("host tune reverted", "changes", len(res.Changes), "files", len(res.Files))
	return &struct{ Body api.TuneResult }{res}, nil
}

// withTuneRoot makes host tune read and write under root (tests).
func withTuneRoot(root string) Option {
	return func(d *Daemon) { d.cfg.TuneRoot = root }
}
