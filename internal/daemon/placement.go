package daemon

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/cluster"
	"github.com/godwit-project/godwit/internal/cluster/placement"
	"github.com/godwit-project/godwit/internal/vm"
)

// Placement: a VM created on a host of a cluster without a host named
// (vm create without --host) goes where placement picks (internal/
// cluster/placement): this host decides from the registry and the
// reservation records, then creates it here or forwards the create to
// the host picked, for its caller. That host claims the VM with its
// reservation in one guarded transaction; when it has no room after all
// (another create took it first), it answers 409 no-room, and this host
// decides again with what the store says now.

// placeTries bounds the decisions of one create: each failed one means
// another create took the room first.
const placeTries = 8

func (d *Daemon) placementRoutes() []route {
	return []route{
		{Read, op("place-vm", http.MethodPost, "/v1/placement", "Where vm create would place a VM, and why (vm create --dry-run); creates nothing", "vms"), handle(d.placeVM)},
	}
}

type placeInput struct {
	Host string `query:"host" doc:"Ask only about this host (vm create --host)."`
	Body api.VMSpec
}

func (d *Daemon) placeVM(ctx context.Context, in *placeInput) (*struct{ Body api.PlacementDecision }, error) {
	spec := in.Body
	vm.Normalize(&spec)
	if err := vm.ValidateStatic(spec); err != nil {
		return nil, err
	}
	n := d.clusterNode()
	if n == nil {
		if in.Host != "" && in.Host != d.cfg.Name {
			return nil, api.BadRequest("host: this host is %s, in no cluster", d.cfg.Name)
		}
		v := api.PlacementVerdict{Host: d.cfg.Name, Fits: true, Picked: true, Reason: "this host is in no cluster: vm create makes the VM here"}
		return &struct{ Body api.PlacementDecision }{api.PlacementDecision{VM: spec.Name, Picked: d.cfg.Name,
			Verdicts: []api.PlacementVerdict{v}, Explanation: v.Host + ": " + v.Reason}}, nil
	}
	t0 := time.Now()
	dec, err := d.decide(ctx, n, spec, in.Host)
	if err != nil {
		return nil, err
	}
	out := decisionOut(spec.Name, dec)
	out.TookMs = time.Since(t0).Milliseconds()
	return &struct{ Body api.PlacementDecision }{out}, nil
}

func decisionOut(name string, dec placement.Decision) api.PlacementDecision {
	out := api.PlacementDecision{VM: name, Picked: dec.Picked, Explanation: dec.Explain(), Verdicts: []api.PlacementVerdict{}}
	for _, v := range dec.Verdicts {
		out.Verdicts = append(out.Verdicts, api.PlacementVerdict{Host: v.Host, Fits: v.Fits, Picked: v.Picked, Reason: v.Reason})
	}
	return out
}

// decide places spec among the cluster's hosts as the store says now
// (only on host, when one is named).
func (d *Daemon) decide(ctx context.Context, n *cluster.Node, spec api.VMSpec, host string, exclude ...string) (placement.Decision, error) {
	hosts, err := n.PlacementHosts(ctx)
	if err != nil {
		return placement.Decision{}, err
	}
	if host != "" {
		var only []placement.Host
		for _, h := range hosts {
			if h.Name == host {
				only = append(only, h)
			}
		}
		if len(only) == 0 {
			return placement.Decision{}, api.NotFound("host: %s is no host of this cluster (godwit cluster status lists them)", host)
		}
		hosts = only
	}
	need := placement.NeedOf(spec)
	need.Exclude = exclude
	return placement.Choose(hosts, need, d.cfg.Cluster.Placement), nil
}

// placeAndCreate creates a VM on the host placement picks, deciding again
// while the host picked turns out to have no room.
func (d *Daemon) placeAndCreate(ctx context.Context, n *cluster.Node, spec api.VMSpec, start bool) (api.Operation, error) {
	vm.Normalize(&spec)
	if err := vm.ValidateStatic(spec); err != nil {
		return api.Operation{}, err
	}
	if owner, err := n.Owner(ctx, spec.Name); err != nil {
		return api.Operation{}, err
	} else if owner != "" {
		return api.Operation{}, api.Conflict("vm %s exists on host %s", spec.Name, owner)
	}
	var last error
	for range placeTries {
		t0 := time.Now()
		dec, err := d.decide(ctx, n, spec, "")
		if err != nil {
			return api.Operation{}, err
		}
		if dec.Picked == "" {
			e := api.Conflict("no host of the cluster can take vm %s: %s", spec.Name, dec.Explain())
			e.Reason = api.ReasonNoRoom
			return api.Operation{}, e
		}
		d.log.Info("placement", "vm", spec.Name, "picked", dec.Picked, "took", time.Since(t0).Round(time.Microsecond), "why", dec.Explain())
		op, err := d.createOn(ctx, dec.Picked, spec, start)
		var se *api.StatusError
		if err == nil || !errors.As(err, &se) || se.Reason != api.ReasonNoRoom {
			return op, err
		}
		last = err
	}
	return api.Operation{}, last
}

// createOn creates the VM on host: here, or there for this request's
// caller.
func (d *Daemon) createOn(ctx context.Context, host string, spec api.VMSpec, start bool) (api.Operation, error) {
	if host == d.cfg.Name {
		if err := d.host.ensure(ctx); err != nil {
			return api.Operation{}, err
		}
		return d.vms.Create(ctx, spec, vm.CreateOptions{Start: start})
	}
	c, err := d.forwardClient(ctx, host)
	if err != nil {
		return api.Operation{}, err
	}
	defer c.Close()
	return c.CreateVM(ctx, spec, client.CreateOptions{Start: start, Host: host})
}
