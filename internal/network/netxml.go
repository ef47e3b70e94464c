package network

import (
	"fmt"
	"net/netip"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
)

// Def is what a libvirt network is made from: the resolved spec (defaults
// filled in) and the names it has in libvirt and on the host.
type Def struct {
	Spec    api.NetworkSpec
	Libvirt string
	// Bridge is the host bridge: godwit's own for nat and isolated
	// networks, the user's for bridge and ovs ones.
	Bridge string
	UUID   string
}

// Build returns the libvirt network for d, which must be resolved.
func Build(d Def) (*libvirtxml.Network, error) {
	n := &libvirtxml.Network{Name: d.Libvirt, UUID: d.UUID}
	s := d.Spec
	switch s.Type {
	case api.NetworkNAT, api.NetworkIsolated:
		if s.Type == api.NetworkNAT {
			n.Forward = &libvirtxml.NetworkForward{Mode: "nat"}
		}
		// No spanning tree delay: guests get their first packets through at once.
		n.Bridge = &libvirtxml.NetworkBridge{Name: d.Bridge, STP: "on", Delay: "0"}
		p, err := netip.ParsePrefix(s.Subnet)
		if err != nil {
			return nil, fmt.Errorf("network %s: subnet %q: %w", s.Name, s.Subnet, err)
		}
		ip := libvirtxml.NetworkIP{Address: s.Gateway, Prefix: uint(p.Bits())}
		if DHCPEnabled(s) && s.DHCP != nil {
			dhcp := &libvirtxml.NetworkDHCP{Ranges: []libvirtxml.NetworkDHCPRange{{Start: s.DHCP.Start, End: s.DHCP.End}}}
			for _, h := range s.DHCP.Hosts {
				dhcp.Hosts = append(dhcp.Hosts, libvirtxml.NetworkDHCPHost{MAC: h.MAC, IP: h.IP, Name: h.Name})
			}
			ip.DHCP = dhcp
		}
		n.IPs = []libvirtxml.NetworkIP{ip}
	case api.NetworkBridge:
		n.Forward = &libvirtxml.NetworkForward{Mode: "bridge"}
		n.Bridge = &libvirtxml.NetworkBridge{Name: d.Bridge}
	case api.NetworkOVS:
		n.Forward = &libvirtxml.NetworkForward{Mode: "bridge"}
		n.Bridge = &libvirtxml.NetworkBridge{Name: d.Bridge}
		n.VirtualPort = &libvirtxml.NetworkVirtualPort{Params: &libvirtxml.NetworkVirtualPortParams{
			OpenVSwitch: &libvirtxml.NetworkVirtualPortParamsOpenVSwitch{}}}
	default:
		return nil, fmt.Errorf("network %s: type %q is not nat, isolated, bridge or ovs", s.Name, s.Type)
	}
	return n, nil
}

// Marshal returns the libvirt network XML for d.
func Marshal(d Def) (string, error) {
	n, err := Build(d)
	if err != nil {
		return "", err
	}
	return n.Marshal()
}

// subnetsOf returns the IPv4 subnets a libvirt network XML routes.
func subnetsOf(doc string) []netip.Prefix {
	var n libvirtxml.Network
	if n.Unmarshal(doc) != nil {
		return nil
	}
	var out []netip.Prefix
	for _, ip := range n.IPs {
		a, err := netip.ParseAddr(ip.Address)
		if err != nil || !a.Is4() {
			continue
		}
		bits := int(ip.Prefix)
		if bits == 0 && ip.Netmask != "" {
			if m, err := netip.ParseAddr(ip.Netmask); err == nil {
				bits = maskBits(m)
			}
		}
		if bits == 0 {
			bits = 24
		}
		out = append(out, netip.PrefixFrom(a, bits).Masked())
	}
	return out
}

func maskBits(m netip.Addr) int {
	b := m.As4()
	n := 0
	for _, x := range b {
		for i := 7; i >= 0; i-- {
			if x&(1<<i) == 0 {
				return n
			}
			n++
		}
	}
	return n
}

// describe reads a foreign network's type, subnet and gateway from its XML.
func describe(doc string) (typ, subnet, gateway string) {
	var n libvirtxml.Network
	if n.Unmarshal(doc) != nil {
		return "", "", ""
	}
	switch {
	case n.Forward == nil:
		typ = api.NetworkIsolated
	case n.Forward.Mode == "nat" || n.Forward.Mode == "":
		typ = api.NetworkNAT
	case n.Forward.Mode == "bridge" && n.VirtualPort != nil && n.VirtualPort.Params != nil && n.VirtualPort.Params.OpenVSwitch != nil:
		typ = api.NetworkOVS
	case n.Forward.Mode == "bridge":
		typ = api.NetworkBridge
	default:
		typ = n.Forward.Mode
	}
	if subs := subnetsOf(doc); len(subs) > 0 {
		subnet = subs[0].String()
		gateway = n.IPs[0].Address
	}
	return typ, subnet, gateway
}
