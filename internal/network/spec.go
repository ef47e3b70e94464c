package network

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/godwit-project/godwit/api"
)

// Limits on a nat or isolated network's subnet: big enough for a gateway
// and a guest, no bigger than a /8.
const (
	MinPrefixLen = 8
	MaxPrefixLen = 30
	MaxDHCPHosts = 1024
)

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// Normalize fills in the type and drops empty optional parts.
func Normalize(s *api.NetworkSpec) {
	s.Type = strings.ToLower(strings.TrimSpace(s.Type))
	if s.Type == "" {
		s.Type = api.NetworkNAT
	}
	if s.DHCP != nil && s.DHCP.Enabled == nil && s.DHCP.Start == "" && s.DHCP.End == "" && len(s.DHCP.Hosts) == 0 {
		s.DHCP = nil
	}
}

// routed reports whether the network type has a subnet of godwit's.
func routed(typ string) bool { return typ == api.NetworkNAT || typ == api.NetworkIsolated }

// DHCPEnabled reports whether a nat or isolated network serves DHCP.
func DHCPEnabled(s api.NetworkSpec) bool {
	return routed(s.Type) && (s.DHCP == nil || s.DHCP.Enabled == nil || *s.DHCP.Enabled)
}

// ValidateStatic checks what needs no host: the name, the type, and the
// fields each type allows. The subnet is checked by resolve, once chosen.
func ValidateStatic(s api.NetworkSpec) error {
	if err := ValidateName(s.Name); err != nil {
		return err
	}
	switch s.Type {
	case api.NetworkNAT, api.NetworkIsolated:
		if s.Bridge != "" {
			return api.BadRequest("bridge: a %s network gets a bridge of its own; bridge is for type bridge or ovs (an existing host bridge)", s.Type)
		}
		if s.Subnet == "" && (s.Gateway != "" || (s.DHCP != nil && (s.DHCP.Start != "" || s.DHCP.End != "" || len(s.DHCP.Hosts) > 0))) {
			return api.BadRequest("subnet: missing; gateway, dhcp ranges and static leases need the subnet they belong to")
		}
	case api.NetworkBridge, api.NetworkOVS:
		if err := validBridge("bridge", s.Bridge); err != nil {
			return err
		}
		if s.Subnet != "" || s.Gateway != "" || s.DHCP != nil {
			return api.BadRequest("subnet: a %s network has no subnet, gateway or DHCP of godwit's (guests get addresses from the bridge's own network)", s.Type)
		}
	default:
		return api.BadRequest("type: %q is not nat, isolated, bridge or ovs", s.Type)
	}
	return nil
}

// resolve fills in a nat or isolated network's gateway and DHCP range from
// its subnet, and checks them and the static leases.
func resolve(s api.NetworkSpec) (api.NetworkSpec, error) {
	if !routed(s.Type) {
		return s, nil
	}
	p, err := netip.ParsePrefix(s.Subnet)
	if err != nil || !p.Addr().Is4() {
		return s, api.BadRequest("subnet: %q is not an IPv4 subnet in CIDR form (e.g. 10.20.30.0/24)", s.Subnet)
	}
	if p.Masked() != p {
		return s, api.BadRequest("subnet: %s has host bits set; the subnet is %s (set gateway: %s for that address)", s.Subnet, p.Masked(), p.Addr())
	}
	if p.Bits() < MinPrefixLen || p.Bits() > MaxPrefixLen {
		return s, api.BadRequest("subnet: /%d is out of range (/%d to /%d)", p.Bits(), MinPrefixLen, MaxPrefixLen)
	}
	s.Subnet = p.String()
	first, last := p.Addr().Next(), broadcast(p).Prev()
	in := func(a netip.Addr) bool { return p.Contains(a) && a != p.Addr() && a != broadcast(p) }

	gw := first
	if s.Gateway != "" {
		if gw, err = netip.ParseAddr(s.Gateway); err != nil || !gw.Is4() {
			return s, api.BadRequest("gateway: %q is not an IPv4 address", s.Gateway)
		}
		if !in(gw) {
			return s, api.BadRequest("gateway: %s is not a host address of the subnet %s", gw, p)
		}
	}
	s.Gateway = gw.String()
	if !DHCPEnabled(s) {
		if s.DHCP != nil && (s.DHCP.Start != "" || s.DHCP.End != "" || len(s.DHCP.Hosts) > 0) {
			return s, api.BadRequest("dhcp: ranges and static leases need dhcp.enabled")
		}
		return s, nil
	}
	d := api.DHCP{}
	if s.DHCP != nil {
		d = *s.DHCP
		d.Hosts = append([]api.DHCPHost(nil), s.DHCP.Hosts...)
	}
	d.Enabled = nil
	// By default, every host address on one side of the gateway.
	start, end := gw.Next(), last
	if gw == last {
		start, end = first, gw.Prev()
	}
	if d.Start != "" {
		if start, err = netip.ParseAddr(d.Start); err != nil || !in(start) {
			return s, api.BadRequest("dhcp.start: %q is not a host address of the subnet %s", d.Start, p)
		}
	}
	if d.End != "" {
		if end, err = netip.ParseAddr(d.End); err != nil || !in(end) {
			return s, api.BadRequest("dhcp.end: %q is not a host address of the subnet %s", d.End, p)
		}
	}
	if end.Less(start) {
		return s, api.BadRequest("dhcp: the range %s-%s ends before it starts", start, end)
	}
	if !gw.Less(start) && !end.Less(gw) {
		return s, api.BadRequest("dhcp: the range %s-%s holds the gateway %s", start, end, gw)
	}
	d.Start, d.End = start.String(), end.String()
	if len(d.Hosts) > MaxDHCPHosts {
		return s, api.BadRequest("dhcp.hosts: %d static leases is more than %d", len(d.Hosts), MaxDHCPHosts)
	}
	macs, ips := map[string]int{}, map[netip.Addr]int{}
	for i, h := range d.Hosts {
		field := fmt.Sprintf("dhcp.hosts[%d]", i)
		mac, err := NormalizeMAC(field+".mac", h.MAC)
		if err != nil {
			return s, err
		}
		if j, dup := macs[mac]; dup {
			return s, api.BadRequest("%s.mac: %s already has a static lease (dhcp.hosts[%d])", field, mac, j)
		}
		macs[mac] = i
		ip, err := netip.ParseAddr(h.IP)
		if err != nil || !in(ip) {
			return s, api.BadRequest("%s.ip: %q is not a host address of the subnet %s", field, h.IP, p)
		}
		if ip == gw {
			return s, api.BadRequest("%s.ip: %s is the gateway's address", field, ip)
		}
		if j, dup := ips[ip]; dup {
			return s, api.BadRequest("%s.ip: %s is already leased to dhcp.hosts[%d]", field, ip, j)
		}
		ips[ip] = i
		if h.Name != "" && !hostnameRE.MatchString(h.Name) {
			return s, api.BadRequest("%s.name: %q is not a host name (letters, digits and '-')", field, h.Name)
		}
		d.Hosts[i] = api.DHCPHost{MAC: mac, IP: ip.String(), Name: h.Name}
	}
	s.DHCP = &d
	return s, nil
}

// broadcast is the last address of p.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
