package libvirt

import (
	"context"
	"strconv"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

// onNetwork runs f on the named network.
func (c *Conn) onNetwork(ctx context.Context, what, name string, f func(l *golibvirt.Libvirt, n golibvirt.Network) error) error {
	return do0(ctx, c, what+" "+name, func(l *golibvirt.Libvirt) error {
		n, err := l.NetworkLookupByName(name)
		if err != nil {
			return err
		}
		return f(l, n)
	})
}

// DefineNetwork defines a persistent network; a taken name is ErrExists
// (libvirt itself would replace a same-named, same-UUID definition).
func (c *Conn) DefineNetwork(ctx context.Context, xml string) (hypervisor.NetworkInfo, error) {
	var x libvirtxml.Network
	if err := x.Unmarshal(xml); err != nil {
		return hypervisor.NetworkInfo{}, err
	}
	n, err := do(ctx, c, "define network "+x.Name, func(l *golibvirt.Libvirt) (golibvirt.Network, error) {
		if _, err := l.NetworkLookupByName(x.Name); err == nil {
			return golibvirt.Network{}, golibvirt.Error{Code: uint32(golibvirt.ErrNetworkExist), Message: "network '" + x.Name + "' already exists"}
		}
		return l.NetworkDefineXML(xml)
	})
	if err != nil {
		return hypervisor.NetworkInfo{}, err
	}
	return c.LookupNetwork(ctx, n.Name)
}

// StartNetwork starts a network: libvirt makes its bridge, spawns its
// dnsmasq and adds its firewall rules.
func (c *Conn) StartNetwork(ctx context.Context, name string) error {
	return c.onNetwork(ctx, "start network", name, func(l *golibvirt.Libvirt, n golibvirt.Network) error {
		return l.NetworkCreate(n)
	})
}

// SetNetworkAutostart turns libvirt's autostart of a network on or off.
func (c *Conn) SetNetworkAutostart(ctx context.Context, name string, on bool) error {
	v := int32(0)
	if on {
		v = 1
	}
	return c.onNetwork(ctx, "set autostart of network", name, func(l *golibvirt.Libvirt, n golibvirt.Network) error {
		return l.NetworkSetAutostart(n, v)
	})
}

// StopNetwork stops an active network.
func (c *Conn) StopNetwork(ctx context.Context, name string) error {
	return c.onNetwork(ctx, "stop network", name, func(l *golibvirt.Libvirt, n golibvirt.Network) error {
		return l.NetworkDestroy(n)
	})
}

// UndefineNetwork removes a network's definition.
func (c *Conn) UndefineNetwork(ctx context.Context, name string) error {
	return c.onNetwork(ctx, "undefine network", name, func(l *golibvirt.Libvirt, n golibvirt.Network) error {
		return l.NetworkUndefine(n)
	})
}

// LookupNetwork returns one network with its XML.
func (c *Conn) LookupNetwork(ctx context.Context, name string) (hypervisor.NetworkInfo, error) {
	return do(ctx, c, "look up network "+name, func(l *golibvirt.Libvirt) (hypervisor.NetworkInfo, error) {
		n, err := l.NetworkLookupByName(name)
		if err != nil {
			return hypervisor.NetworkInfo{}, err
		}
		return networkInfo(l, n)
	})
}

// ListNetworks returns every network with its XML.
func (c *Conn) ListNetworks(ctx context.Context) ([]hypervisor.NetworkInfo, error) {
	return do(ctx, c, "list networks", func(l *golibvirt.Libvirt) ([]hypervisor.NetworkInfo, error) {
		nets, _, err := l.ConnectListAllNetworks(1, 0)
		if err != nil {
			return nil, err
		}
		out := make([]hypervisor.NetworkInfo, 0, len(nets))
		for _, n := range nets {
			info, err := networkInfo(l, n)
			if isCode(err, golibvirt.ErrNoNetwork) {
				continue // gone meanwhile
			}
			if err != nil {
				return nil, err
			}
			out = append(out, info)
		}
		return out, nil
	})
}

func networkInfo(l *golibvirt.Libvirt, n golibvirt.Network) (hypervisor.NetworkInfo, error) {
	doc, err := l.NetworkGetXMLDesc(n, 0)
	if err != nil {
		return hypervisor.NetworkInfo{}, err
	}
	active, err := l.NetworkIsActive(n)
	if err != nil {
		return hypervisor.NetworkInfo{}, err
	}
	persistent, err := l.NetworkIsPersistent(n)
	if err != nil {
		return hypervisor.NetworkInfo{}, err
	}
	auto, err := l.NetworkGetAutostart(n)
	if err != nil {
		return hypervisor.NetworkInfo{}, err
	}
	info := hypervisor.NetworkInfo{
		Name: n.Name, UUID: uuidString(n.UUID), Active: active == 1, Persistent: persistent == 1,
		Autostart: auto == 1, XML: doc,
	}
	var x libvirtxml.Network
	if x.Unmarshal(doc) == nil && x.Bridge != nil {
		info.Bridge = x.Bridge.Name
	}
	return info, nil
}

// NetworkLeases returns the leases libvirt's dnsmasq handed out.
func (c *Conn) NetworkLeases(ctx context.Context, name string) ([]hypervisor.Lease, error) {
	return do(ctx, c, "get DHCP leases of network "+name, func(l *golibvirt.Libvirt) ([]hypervisor.Lease, error) {
		n, err := l.NetworkLookupByName(name)
		if err != nil {
			return nil, err
		}
		leases, _, err := l.NetworkGetDhcpLeases(n, nil, 1, 0)
		if err != nil {
			return nil, err
		}
		out := make([]hypervisor.Lease, 0, len(leases))
		for _, le := range leases {
			if le.Type != int32(golibvirt.IPAddrTypeIpv4) && le.Type != int32(golibvirt.IPAddrTypeIpv6) {
				continue
			}
			out = append(out, hypervisor.Lease{
				MAC: strings.ToLower(first(le.Mac)), IP: le.Ipaddr, Prefix: int(le.Prefix),
				Hostname: first(le.Hostname), Expires: time.Unix(le.Expirytime, 0),
			})
		}
		return out, nil
	})
}

// NetworkPortOwners names the domains with a port on the network (running
// domains plugged in through libvirt's network driver).
func (c *Conn) NetworkPortOwners(ctx context.Context, name string) ([]string, error) {
	return do(ctx, c, "list ports of network "+name, func(l *golibvirt.Libvirt) ([]string, error) {
		n, err := l.NetworkLookupByName(name)
		if err != nil {
			return nil, err
		}
		ports, _, err := l.NetworkListAllPorts(n, 1, 0)
		if err != nil {
			return nil, err
		}
		var out []string
		seen := map[string]bool{}
		for _, p := range ports {
			doc, err := l.NetworkPortGetXMLDesc(p, 0)
			if err != nil {
				continue // unplugged meanwhile
			}
			var x libvirtxml.NetworkPort
			if x.Unmarshal(doc) == nil && x.Owner != nil && !seen[x.Owner.Name] {
				seen[x.Owner.Name] = true
				out = append(out, x.Owner.Name)
			}
		}
		return out, nil
	})
}

func first(s golibvirt.OptString) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// InterfaceAddresses asks libvirt for a running domain's addresses.
func (c *Conn) InterfaceAddresses(ctx context.Context, domain string, src hypervisor.AddressSource) ([]hypervisor.Interface, error) {
	return do(ctx, c, "get "+src.String()+" addresses of domain "+domain, func(l *golibvirt.Libvirt) ([]hypervisor.Interface, error) {
		d, err := c.lookup(l, domain)
		if err != nil {
			return nil, err
		}
		ifaces, err := l.DomainInterfaceAddresses(d, uint32(src), 0)
		if err != nil {
			return nil, err
		}
		out := make([]hypervisor.Interface, 0, len(ifaces))
		for _, i := range ifaces {
			it := hypervisor.Interface{Name: i.Name, MAC: strings.ToLower(first(i.Hwaddr))}
			for _, a := range i.Addrs {
				it.Addrs = append(it.Addrs, a.Addr+"/"+strconv.Itoa(int(a.Prefix)))
			}
			out = append(out, it)
		}
		return out, nil
	})
}
