package daemon

import (
	"context"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/network"
	"github.com/godwit-project/godwit/internal/vm"
)

// newNetworks makes the network service; it asks the VM service which VMs
// use a network.
func (d *Daemon) newNetworks() *network.Service {
	users := func(ctx context.Context, name string) ([]string, error) { return d.vms.NetworkUsers(ctx, name) }
	return network.New(d.hv, d.store, network.LocalHost{}, network.Config{
		Prefix: d.cfg.Network.Prefix, Default: !d.cfg.Network.NoDefault, DefaultSubnet: d.cfg.Network.DefaultSubnet,
	}, users, d.log)
}

// ensureNetworks brings godwit's networks up (the default one at first
// start). A failure does not keep VMs without NICs from working: the
// network service logs it and tries again later.
func (h *hostState) ensureNetworks(ctx context.Context) {
	h.mu.Lock()
	up := h.netsUp
	h.mu.Unlock()
	if up {
		return
	}
	if err := h.d.nets.EnsureUp(ctx); err == nil {
		h.set(func() { h.netsUp = true })
	}
}

func (d *Daemon) networkRoutes() []route {
	return []route{
		{Read, op("list-networks", http.MethodGet, "/v1/networks", "List networks (including libvirt networks godwit did not create)", "networks"), handle(d.listNetworks)},
		{Admin, created(op("create-network", http.MethodPost, "/v1/networks", "Create a network", "networks")), handle(d.createNetwork)},
		{Read, op("get-network", http.MethodGet, "/v1/networks/{name}", "Show a network with its DHCP leases", "networks"), handle(d.getNetwork)},
		{Admin, op("delete-network", http.MethodDelete, "/v1/networks/{name}", "Delete a network no VM uses", "networks"), handle(d.deleteNetwork)},
		{Admin, accepted(op("attach-nic", http.MethodPost, "/v1/vms/{name}/nics", "Plug a NIC into a VM (running or stopped)", "vms")), handle(d.attachNIC)},
		{Admin, accepted(op("detach-nic", http.MethodDelete, "/v1/vms/{name}/nics/{nic}", "Unplug a VM's NIC, named by its MAC or its network", "vms")), handle(d.detachNIC)},
	}
}

func created(o huma.Operation) huma.Operation {
	o.DefaultStatus = http.StatusCreated
	return o
}

type networkOutput struct{ Body api.Network }

func (d *Daemon) listNetworks(ctx context.Context, _ *struct{}) (*struct{ Body api.NetworkList }, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	list, err := d.nets.List(ctx)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.NetworkList }{api.NetworkList{Networks: list}}, nil
}

func (d *Daemon) createNetwork(ctx context.Context, in *struct{ Body api.NetworkSpec }) (*networkOutput, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	n, err := d.nets.Create(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	return &networkOutput{n}, nil
}

type networkNameInput struct {
	Name string `path:"name" doc:"Network name"`
}

func (d *Daemon) getNetwork(ctx context.Context, in *networkNameInput) (*networkOutput, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	n, err := d.nets.Get(ctx, in.Name)
	if err != nil {
		return nil, err
	}
	return &networkOutput{n}, nil
}

func (d *Daemon) deleteNetwork(ctx context.Context, in *networkNameInput) (*struct{}, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	return nil, d.nets.Delete(ctx, in.Name)
}

type attachNICInput struct {
	Name string `path:"name" doc:"VM name"`
	Body api.NIC
}

func (d *Daemon) attachNIC(ctx context.Context, in *attachNICInput) (*opOutput, error) {
	return d.opAction(ctx, func() (api.Operation, error) { return d.vms.AttachNIC(ctx, in.Name, in.Body) })
}

type detachNICInput struct {
	Name string `path:"name" doc:"VM name"`
	NIC  string `path:"nic" doc:"The NIC's MAC, or the name of its network when the VM has one NIC on it"`
}

func (d *Daemon) detachNIC(ctx context.Context, in *detachNICInput) (*opOutput, error) {
	// Network names hold no colons; MACs do.
	req := vm.NICRef{Network: in.NIC}
	if strings.Contains(in.NIC, ":") {
		req = vm.NICRef{MAC: in.NIC}
	}
	return d.opAction(ctx, func() (api.Operation, error) { return d.vms.DetachNIC(ctx, in.Name, req) })
}
