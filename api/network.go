package api

import "time"

// Network types.
const (
	// NetworkNAT is a private subnet on a bridge of its own, with DHCP and
	// NAT to the host's outside.
	NetworkNAT = "nat"
	// NetworkIsolated is like NAT, but guests reach only each other and
	// the host's DHCP/DNS server: nothing is forwarded.
	NetworkIsolated = "isolated"
	// NetworkBridge plugs guests into an existing Linux bridge of the host.
	NetworkBridge = "bridge"
	// NetworkOVS plugs guests into an existing Open vSwitch bridge.
	NetworkOVS = "ovs"
)

// NetworkSpec is what a user asks for when creating a network.
type NetworkSpec struct {
	Name string `json:"name" yaml:"name" doc:"Network name, unique on this daemon." example:"lab"`
	Type string `json:"type,omitempty" yaml:"type,omitempty" enum:"nat,isolated,bridge,ovs" doc:"nat (default), isolated, bridge (an existing Linux bridge) or ovs (an existing Open vSwitch bridge)."`
	// Subnet and DHCP are for nat and isolated networks.
	Subnet  string `json:"subnet,omitempty" yaml:"subnet,omitempty" doc:"IPv4 subnet in CIDR form; nat and isolated networks (default: a free private /24)." example:"10.20.30.0/24"`
	Gateway string `json:"gateway,omitempty" yaml:"gateway,omitempty" doc:"The host's address on the subnet (default: the subnet's first address)." example:"10.20.30.1"`
	DHCP    *DHCP  `json:"dhcp,omitempty" yaml:"dhcp,omitempty" doc:"DHCP on nat and isolated networks (default: on, over the whole subnet)."`
	// Bridge is for bridge and ovs networks.
	Bridge string `json:"bridge,omitempty" yaml:"bridge,omitempty" doc:"The host's existing bridge; bridge and ovs networks only." example:"br0"`
}

// DHCP configures the DHCP server of a nat or isolated network.
type DHCP struct {
	Enabled *bool      `json:"enabled,omitempty" yaml:"enabled,omitempty" doc:"Serve DHCP (default true)."`
	Start   string     `json:"start,omitempty" yaml:"start,omitempty" doc:"First address handed out (default: the one after the gateway)." example:"10.20.30.100"`
	End     string     `json:"end,omitempty" yaml:"end,omitempty" doc:"Last address handed out (default: the subnet's last)." example:"10.20.30.200"`
	Hosts   []DHCPHost `json:"hosts,omitempty" yaml:"hosts,omitempty" doc:"Static leases: this MAC always gets this address."`
}

// DHCPHost is a static lease.
type DHCPHost struct {
	MAC  string `json:"mac" yaml:"mac" example:"52:54:00:12:34:56"`
	IP   string `json:"ip" yaml:"ip" example:"10.20.30.10"`
	Name string `json:"name,omitempty" yaml:"name,omitempty" doc:"Host name handed out with the lease."`
}

// Network is a network as the API reports it.
type Network struct {
	Name    string `json:"name"`
	Managed bool   `json:"managed" doc:"False for libvirt networks godwit did not create; those are read-only."`
	// Libvirt is the libvirt network's name (godwit's names are prefixed so
	// that daemons sharing a libvirtd do not collide).
	Libvirt   string       `json:"libvirt"`
	Type      string       `json:"type,omitempty"`
	Bridge    string       `json:"bridge,omitempty" doc:"The host bridge guests are plugged into."`
	Subnet    string       `json:"subnet,omitempty"`
	Gateway   string       `json:"gateway,omitempty"`
	DHCP      *DHCP        `json:"dhcp,omitempty"`
	Active    bool         `json:"active"`
	Autostart bool         `json:"autostart"`
	VMs       []string     `json:"vms,omitempty" doc:"godwit VMs with a NIC on this network."`
	Leases    []Lease      `json:"leases,omitempty" doc:"DHCP leases handed out now."`
	Spec      *NetworkSpec `json:"spec,omitempty" doc:"The spec; absent for unmanaged networks."`
	CreatedAt time.Time    `json:"createdAt,omitzero"`
	Error     string       `json:"error,omitempty" doc:"Why the network is not usable, when it is not."`
}

// Lease is a DHCP lease of a network.
type Lease struct {
	MAC      string    `json:"mac"`
	IP       string    `json:"ip" doc:"Address with prefix length, e.g. 10.20.30.57/24."`
	Hostname string    `json:"hostname,omitempty"`
	Expires  time.Time `json:"expires,omitzero"`
}

// NetworkList is the answer to GET /v1/networks.
type NetworkList struct {
	Networks []Network `json:"networks"`
}
