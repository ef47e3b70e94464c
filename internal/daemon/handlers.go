package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/console"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/vm"
)

type nameInput struct {
	Name string `path:"name" doc:"VM name"`
}

type vmOutput struct{ Body api.VM }
type opOutput struct{ Body api.Operation }

type listVMsInput struct {
	Host string `query:"host" doc:"In a cluster: only this host's VMs (default: every host's)."`
}

func (d *Daemon) listVMs(ctx context.Context, in *listVMsInput) (*struct{ Body api.VMList }, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	vms, err := d.vms.List(ctx)
	if err != nil {
		return nil, err
	}
	if in.Host == "" {
		vms = append(vms, d.otherHostsVMs(ctx)...)
		sort.SliceStable(vms, func(i, j int) bool {
			if vms[i].Name != vms[j].Name {
				return vms[i].Name < vms[j].Name
			}
			return vms[i].Host < vms[j].Host
		})
	}
	return &struct{ Body api.VMList }{api.VMList{VMs: vms}}, nil
}

func (d *Daemon) getVM(ctx context.Context, in *nameInput) (*vmOutput, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	v, err := d.vms.Get(ctx, in.Name)
	if err != nil {
		return nil, err
	}
	return &vmOutput{v}, nil
}

type createInput struct {
	Start bool   `query:"start" doc:"Start the VM once created."`
	Host  string `query:"host" doc:"In a cluster: the host to create it on (default: the one placement picks)."`
	Body  api.VMSpec
}

func (d *Daemon) createVM(ctx context.Context, in *createInput) (*opOutput, error) {
	n := d.clusterNode()
	switch {
	case n != nil && in.Host == "":
		o, err := d.placeAndCreate(ctx, n, in.Body, in.Start)
		if err != nil {
			return nil, err
		}
		return &opOutput{o}, nil
	case n == nil && in.Host != "" && in.Host != d.cfg.Name:
		return nil, api.BadRequest("host: this host is %s, in no cluster", d.cfg.Name)
	case n != nil && in.Host != d.cfg.Name:
		// Forwarding sent a create for a host of the cluster there.
		return nil, api.NotFound("host: %s is no host of this cluster (godwit cluster status lists them)", in.Host)
	}
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	o, err := d.vms.Create(ctx, in.Body, vm.CreateOptions{Start: in.Start})
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

type applyInput struct {
	Name  string `path:"name" doc:"VM name"`
	Start bool   `query:"start" doc:"Start the VM if apply creates it."`
	Body  api.VMSpec
}

func (d *Daemon) applyVM(ctx context.Context, in *applyInput) (*opOutput, error) {
	if in.Body.Name != in.Name {
		return nil, api.BadRequest("name: the spec names %q but the URL names %q", in.Body.Name, in.Name)
	}
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	o, err := d.vms.Apply(ctx, in.Body, vm.ApplyOptions{Start: in.Start})
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

type setInput struct {
	Name string `path:"name" doc:"VM name"`
	Body api.VMSet
}

// setVM is vm set: a change made through apply, live where QEMU can.
func (d *Daemon) setVM(ctx context.Context, in *setInput) (*opOutput, error) {
	return d.opAction(ctx, func() (api.Operation, error) { return d.vms.Set(ctx, in.Name, in.Body) })
}

type deleteInput struct {
	Name      string `path:"name" doc:"VM name"`
	KeepDisks bool   `query:"keepDisks" doc:"Keep the VM's disk volumes."`
	Force     bool   `query:"force" doc:"Delete a running VM (it is destroyed first)."`
}

func (d *Daemon) deleteVM(ctx context.Context, in *deleteInput) (*opOutput, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	o, err := d.vms.Delete(ctx, in.Name, vm.DeleteOptions{KeepDisks: in.KeepDisks, Force: in.Force})
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

// opAction adapts a service call that starts an operation.
func (d *Daemon) opAction(ctx context.Context, f func() (api.Operation, error)) (*opOutput, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	o, err := f()
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

// vmAction adapts a quick service call that returns the VM.
func (d *Daemon) vmAction(ctx context.Context, f func() (api.VM, error)) (*vmOutput, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	v, err := f()
	if err != nil {
		return nil, err
	}
	return &vmOutput{v}, nil
}

func (d *Daemon) startVM(ctx context.Context, in *nameInput) (*opOutput, error) {
	return d.opAction(ctx, func() (api.Operation, error) { return d.vms.Start(ctx, in.Name) })
}

type stopInput struct {
	Name string `path:"name" doc:"VM name"`
	Body *api.StopRequest
}

func (d *Daemon) stopVM(ctx context.Context, in *stopInput) (*opOutput, error) {
	req := api.StopRequest{}
	if in.Body != nil {
		req = *in.Body
	}
	if req.Timeout < 0 {
		return nil, api.BadRequest("timeoutSeconds: %d is negative", req.Timeout)
	}
	return d.opAction(ctx, func() (api.Operation, error) {
		return d.vms.Stop(ctx, in.Name, vm.StopOptions{Force: req.Force, Timeout: time.Duration(req.Timeout) * time.Second})
	})
}

func (d *Daemon) rebootVM(ctx context.Context, in *nameInput) (*opOutput, error) {
	return d.opAction(ctx, func() (api.Operation, error) { return d.vms.Reboot(ctx, in.Name) })
}

func (d *Daemon) killVM(ctx context.Context, in *nameInput) (*vmOutput, error) {
	return d.vmAction(ctx, func() (api.VM, error) { return d.vms.Kill(ctx, in.Name) })
}

func (d *Daemon) pauseVM(ctx context.Context, in *nameInput) (*vmOutput, error) {
	return d.vmAction(ctx, func() (api.VM, error) { return d.vms.Pause(ctx, in.Name) })
}

func (d *Daemon) resumeVM(ctx context.Context, in *nameInput) (*vmOutput, error) {
	return d.vmAction(ctx, func() (api.VM, error) { return d.vms.Resume(ctx, in.Name) })
}

type adoptInput struct {
	Name string `path:"name" doc:"The libvirt domain's name"`
	Body *api.AdoptRequest
}

func (d *Daemon) adoptVM(ctx context.Context, in *adoptInput) (*struct{ Body api.AdoptResult }, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	dry := in.Body != nil && in.Body.DryRun
	res, err := d.vms.Adopt(ctx, in.Name, dry)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.AdoptResult }{res}, nil
}

func (d *Daemon) releaseVM(ctx context.Context, in *nameInput) (*vmOutput, error) {
	return d.vmAction(ctx, func() (api.VM, error) { return d.vms.Release(ctx, in.Name) })
}

type consoleInput struct {
	Name   string `path:"name" doc:"VM name"`
	Follow bool   `query:"follow" doc:"Keep the response open and stream new output."`
	Lines  int    `query:"lines" minimum:"0" doc:"Start with only the last N lines."`
	Offset int64  `query:"offset" minimum:"0" doc:"Start at this byte of the log (a start operation's result.consoleOffset)."`
}

// registerConsole streams text, which huma's typed handlers do not.
func (d *Daemon) registerConsole(a huma.API, o huma.Operation) {
	o.Responses = map[string]*huma.Response{"200": {
		Description: "The console output as text",
		Content:     map[string]*huma.MediaType{"text/plain": {}},
	}}
	huma.Register(a, o, func(ctx context.Context, in *consoleInput) (*huma.StreamResponse, error) {
		if err := d.host.ensure(ctx); err != nil {
			return nil, toStatus(err)
		}
		path, err := d.vms.ConsoleLog(ctx, in.Name)
		if err != nil {
			return nil, toStatus(err)
		}
		return &huma.StreamResponse{Body: func(hc huma.Context) {
			hc.SetHeader("Content-Type", "text/plain; charset=utf-8")
			hc.SetHeader("Cache-Control", "no-store")
			w := hc.BodyWriter()
			fw := flushWriter{w}
			fw.Flush()
			if err := console.Copy(hc.Context(), path, fw, console.Options{Follow: in.Follow, Lines: in.Lines, Offset: in.Offset}); err != nil {
				d.log.Warn("console stream", "vm", in.Name, "err", err)
			}
		}}, nil
	})
}

type flushWriter struct {
	w interface{ Write([]byte) (int, error) }
}

func (f flushWriter) Write(p []byte) (int, error) { return f.w.Write(p) }
func (f flushWriter) Flush() {
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
}

type listOpsInput struct {
	Target string `query:"target" doc:"Only operations on this target, e.g. vm/web1."`
	Active bool   `query:"active" doc:"Only pending or running operations."`
	Host   string `query:"host" doc:"In a cluster: only this host's operations (default: every host's)."`
}

func (d *Daemon) listOps(ctx context.Context, in *listOpsInput) (*struct{ Body api.OperationList }, error) {
	list, err := d.ops.List(ctx, ops.Filter{Target: in.Target, Active: in.Active})
	if err != nil {
		return nil, err
	}
	if in.Host == "" {
		list = append(list, d.otherHostsOps(ctx, client.OperationFilter{Target: in.Target, Active: in.Active})...)
		sort.SliceStable(list, func(i, j int) bool { return list[i].ID > list[j].ID })
	}
	return &struct{ Body api.OperationList }{api.OperationList{Operations: list}}, nil
}

type opIDInput struct {
	ID string `path:"id" doc:"Operation id"`
}

func (d *Daemon) getOp(ctx context.Context, in *opIDInput) (*opOutput, error) {
	o, err := d.ops.Get(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

type waitInput struct {
	ID      string `path:"id" doc:"Operation id"`
	Timeout int    `query:"timeout" minimum:"0" maximum:"3600" doc:"Seconds to wait at most (default 60); the operation is returned as it is then."`
}

func (d *Daemon) waitOp(ctx context.Context, in *waitInput) (*opOutput, error) {
	t := time.Duration(in.Timeout) * time.Second
	if in.Timeout == 0 {
		t = time.Minute
	}
	wctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	o, err := d.ops.Wait(wctx, in.ID)
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

func (d *Daemon) cancelOp(ctx context.Context, in *opIDInput) (*opOutput, error) {
	o, err := d.ops.Cancel(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

func (d *Daemon) getHost(ctx context.Context, _ *struct{}) (*struct{ Body api.Host }, error) {
	return &struct{ Body api.Host }{d.host.describe(ctx)}, nil
}

func (d *Daemon) healthz(ctx context.Context, _ *struct{}) (*struct{ Body map[string]string }, error) {
	return &struct{ Body map[string]string }{map[string]string{"status": "ok"}}, nil
}

// writeError writes an API error outside huma (unknown paths).
func writeError(w http.ResponseWriter, err error) {
	se, _ := toStatus(err).(*api.StatusError)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(se.Code)
	_ = json.NewEncoder(w).Encode(se)
}
