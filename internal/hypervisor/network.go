package hypervisor

import (
	"context"
	"errors"
	"time"
)

// ErrAgentUnavailable: the guest has no qemu-guest-agent, or it does not
// answer.
var ErrAgentUnavailable = errors.New("guest agent unavailable")

// NetworkInfo is a libvirt network as it is.
type NetworkInfo struct {
	Name       string
	UUID       string
	Bridge     string
	Active     bool
	Autostart  bool
	Persistent bool
	// XML is the network's definition.
	XML string
}

// Lease is a DHCP lease libvirt's dnsmasq handed out.
type Lease struct {
	MAC      string
	IP       string
	Prefix   int
	Hostname string
	Expires  time.Time
}

// Networks manages libvirt networks.
type Networks interface {
	// DefineNetwork makes a persistent network from XML (not started).
	// ErrExists if the name is taken.
	DefineNetwork(ctx context.Context, xml string) (NetworkInfo, error)
	// StartNetwork starts a defined network (bridge, dnsmasq, firewall).
	StartNetwork(ctx context.Context, name string) error
	SetNetworkAutostart(ctx context.Context, name string, on bool) error
	// StopNetwork stops an active network (libvirt's net-destroy).
	StopNetwork(ctx context.Context, name string) error
	// UndefineNetwork removes an inactive network's definition.
	UndefineNetwork(ctx context.Context, name string) error
	LookupNetwork(ctx context.Context, name string) (NetworkInfo, error)
	// ListNetworks returns every network, with its XML.
	ListNetworks(ctx context.Context) ([]NetworkInfo, error)
	// NetworkLeases returns the DHCP leases of a network.
	NetworkLeases(ctx context.Context, name string) ([]Lease, error)
	// NetworkPortOwners names the running domains plugged into a network.
	NetworkPortOwners(ctx context.Context, name string) ([]string, error)
}

// AddressSource is where InterfaceAddresses looks.
type AddressSource int

// Address sources, as libvirt's virDomainInterfaceAddressesSource.
const (
	AddressesFromLease AddressSource = iota
	AddressesFromAgent
	AddressesFromARP
)

func (s AddressSource) String() string {
	switch s {
	case AddressesFromLease:
		return "lease"
	case AddressesFromAgent:
		return "agent"
	case AddressesFromARP:
		return "arp"
	}
	return "unknown"
}

// Interface is a guest interface with its addresses.
type Interface struct {
	// Name is the guest's name for it (agent) or the host's tap (lease, arp).
	Name string
	MAC  string
	// Addrs are "IP/prefix".
	Addrs []string
}
