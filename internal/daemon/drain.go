package daemon

import (
	"context"
	"net/http"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/cluster"
	"github.com/godwit-project/godwit/internal/cluster/placement"
)

// Drain: 'godwit host drain HOST' marks the host unschedulable (placement
// puts nothing new there) and moves each of its VMs, running ones live,
// stopped ones cold, to the host placement picks for it, with room
// reserved there before each move; it ends with a summary. The request
// is served by the host drained (forwarding sends it there).

func (d *Daemon) drainRoutes() []route {
	return []route{
		{Admin, accepted(op("drain-host", http.MethodPost, "/v1/cluster/hosts/{name}/drain", "Mark a host unschedulable and move its VMs where placement picks", "cluster")), handle(d.drainHost)},
		{Admin, op("undrain-host", http.MethodPost, "/v1/cluster/hosts/{name}/undrain", "Make a drained host schedulable again", "cluster"), handle(d.undrainHost)},
	}
}

type drainInput struct {
	Name string `path:"name" doc:"The host to drain (its name in the cluster)"`
	Body *api.EvacuateRequest
}

func (d *Daemon) drainHost(ctx context.Context, in *drainInput) (*opOutput, error) {
	n := d.clusterNode()
	if n == nil {
		return nil, api.Conflict("this host is in no cluster: godwit host evacuate moves its VMs to its peers")
	}
	if in.Name != d.cfg.Name {
		return nil, api.NotFound("host: %s is no host of this cluster (godwit cluster status lists them)", in.Name)
	}
	req := api.EvacuateRequest{}
	if in.Body != nil {
		req = *in.Body
	}
	if err := n.SetSchedulable(ctx, d.cfg.Name, false); err != nil {
		return nil, err
	}
	o, err := d.migrations.Drain(ctx, req, drainPlacer{d, n})
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

func (d *Daemon) undrainHost(ctx context.Context, in *nameInput) (*struct{}, error) {
	n := d.clusterNode()
	if n == nil {
		return nil, api.Conflict("this host is in no cluster")
	}
	if _, ok := n.Host(in.Name); !ok {
		return nil, api.NotFound("host: %s is no host of this cluster (godwit cluster status lists them)", in.Name)
	}
	return &struct{}{}, n.SetSchedulable(ctx, in.Name, true)
}

// drainPlacer is placement for a drain of this host.
type drainPlacer struct {
	d *Daemon
	n *cluster.Node
}

func (p drainPlacer) spec(ctx context.Context, name string) (api.VMSpec, error) {
	v, err := p.d.vms.Get(ctx, name)
	if err != nil {
		return api.VMSpec{}, err
	}
	if v.Spec == nil {
		return api.VMSpec{}, api.Conflict("vm %s is not godwit's", name)
	}
	return *v.Spec, nil
}

func (p drainPlacer) Targets(ctx context.Context, name string) ([]string, error) {
	spec, err := p.spec(ctx, name)
	if err != nil {
		return nil, err
	}
	dec, err := p.d.decide(ctx, p.n, spec, "")
	if err != nil {
		return nil, err
	}
	if dec.Picked == "" {
		return nil, api.Conflict("no host can take it: %s", dec.Explain())
	}
	return dec.Candidates(), nil
}

func (p drainPlacer) Reserve(ctx context.Context, host, name string) error {
	spec, err := p.spec(ctx, name)
	if err != nil {
		return err
	}
	return p.n.Reserve(ctx, host, name, placement.NeedOf(spec))
}
