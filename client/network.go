package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/godwit-project/godwit/api"
)

// ListNetworks lists networks, godwit's and libvirt's others.
func (c *Client) ListNetworks(ctx context.Context) ([]api.Network, error) {
	var out api.NetworkList
	err := c.do(ctx, http.MethodGet, "/v1/networks", nil, nil, &out)
	return out.Networks, err
}

// GetNetwork shows one network with its DHCP leases.
func (c *Client) GetNetwork(ctx context.Context, name string) (api.Network, error) {
	var out api.Network
	err := c.do(ctx, http.MethodGet, "/v1/networks/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

// CreateNetwork creates a network and returns it, started.
func (c *Client) CreateNetwork(ctx context.Context, spec api.NetworkSpec) (api.Network, error) {
	var out api.Network
	err := c.do(ctx, http.MethodPost, "/v1/networks", nil, spec, &out)
	return out, err
}

// DeleteNetwork deletes a network no VM uses.
func (c *Client) DeleteNetwork(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/networks/"+url.PathEscape(name), nil, nil, nil)
}

// AttachNIC starts plugging a NIC into a VM (running or stopped); the
// operation's result is the VM.
func (c *Client) AttachNIC(ctx context.Context, vm string, nic api.NIC) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodPost, "/v1/vms/"+url.PathEscape(vm)+"/nics", nil, nic, &out)
	return out, err
}

// DetachNIC starts unplugging a VM's NIC, named by its MAC or by its
// network (when the VM has one NIC there); the operation's result is the VM.
func (c *Client) DetachNIC(ctx context.Context, vm, nic string) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodDelete, "/v1/vms/"+url.PathEscape(vm)+"/nics/"+url.PathEscape(nic), nil, nil, &out)
	return out, err
}
