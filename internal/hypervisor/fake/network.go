package fake

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

type network struct {
	hypervisor.NetworkInfo
	prefix netip.Prefix // the network's subnet; invalid for bridged networks
}

func errNoNetwork(op, name string) error {
	return &Error{Op: op + " " + name, Msg: fmt.Sprintf("Network not found: no network with matching name '%s'", name), Kind: hypervisor.ErrNotFound}
}

func (f *Fake) network(op, name string) (*network, error) {
	n, ok := f.networks[name]
	if !ok {
		return nil, errNoNetwork(op, name)
	}
	return n, nil
}

// SetLeases sets the DHCP leases a network's dnsmasq has handed out.
func (f *Fake) SetLeases(networkName string, leases ...hypervisor.Lease) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leases[networkName] = append([]hypervisor.Lease(nil), leases...)
}

// NetworkNames returns the names of every network, sorted.
func (f *Fake) NetworkNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.networks))
	for n := range f.networks {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// DefineNetwork defines a persistent, inactive network. Like libvirt it
// refuses a bridge name another network has.
func (f *Fake) DefineNetwork(ctx context.Context, doc string) (hypervisor.NetworkInfo, error) {
	var x libvirtxml.Network
	perr := x.Unmarshal(doc)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "DefineNetwork", x.Name); err != nil {
		return hypervisor.NetworkInfo{}, err
	}
	if perr != nil || x.Name == "" {
		return hypervisor.NetworkInfo{}, &Error{Op: "define network", Msg: fmt.Sprintf("XML error: %v", perr)}
	}
	if _, ok := f.networks[x.Name]; ok {
		return hypervisor.NetworkInfo{}, &Error{Op: "define network " + x.Name, Kind: hypervisor.ErrExists,
			Msg: fmt.Sprintf("operation failed: network '%s' already exists", x.Name)}
	}
	n := &network{NetworkInfo: hypervisor.NetworkInfo{Name: x.Name, UUID: newUUID(), Persistent: true, XML: doc}}
	forward := ""
	if x.Forward != nil {
		forward = x.Forward.Mode
	}
	if x.Bridge != nil {
		n.Bridge = x.Bridge.Name
	}
	if forward != "bridge" {
		for _, o := range f.networks {
			if n.Bridge != "" && o.Bridge == n.Bridge {
				return hypervisor.NetworkInfo{}, &Error{Op: "define network " + x.Name,
					Msg: fmt.Sprintf("internal error: bridge name '%s' already in use.", n.Bridge)}
			}
		}
		for _, ip := range x.IPs {
			a, err := netip.ParseAddr(ip.Address)
			if err != nil || ip.Prefix == 0 {
				continue
			}
			n.prefix = netip.PrefixFrom(a, int(ip.Prefix)).Masked()
		}
	}
	f.networks[x.Name] = n
	return n.NetworkInfo, nil
}

// StartNetwork starts an inactive network; like libvirt, it refuses a
// subnet that an active network already routes.
func (f *Fake) StartNetwork(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "StartNetwork", name); err != nil {
		return err
	}
	n, err := f.network("start network", name)
	if err != nil {
		return err
	}
	if n.Active {
		return invalid("start network", name, "network is already active")
	}
	if n.prefix.IsValid() {
		for _, o := range f.networks {
			if o.Active && o.prefix.IsValid() && o.prefix.Overlaps(n.prefix) {
				return &Error{Op: "start network " + name, Msg: fmt.Sprintf("internal error: Network is already in use by interface %s", o.Bridge)}
			}
		}
	}
	n.Active = true
	return nil
}

// SetNetworkAutostart sets a persistent network's autostart.
func (f *Fake) SetNetworkAutostart(ctx context.Context, name string, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "SetNetworkAutostart", name); err != nil {
		return err
	}
	n, err := f.network("set autostart of network", name)
	if err != nil {
		return err
	}
	n.Autostart = on
	return nil
}

// StopNetwork stops an active network; a transient one vanishes.
func (f *Fake) StopNetwork(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "StopNetwork", name); err != nil {
		return err
	}
	n, err := f.network("stop network", name)
	if err != nil {
		return err
	}
	if !n.Active {
		return invalid("stop network", name, "network is not active")
	}
	n.Active = false
	delete(f.leases, name)
	if !n.Persistent {
		delete(f.networks, name)
	}
	return nil
}

// UndefineNetwork removes a network's definition; an active one becomes
// transient, as in libvirt.
func (f *Fake) UndefineNetwork(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "UndefineNetwork", name); err != nil {
		return err
	}
	n, err := f.network("undefine network", name)
	if err != nil {
		return err
	}
	if n.Active {
		n.Persistent, n.Autostart = false, false
		return nil
	}
	delete(f.networks, name)
	return nil
}

// LookupNetwork returns one network.
func (f *Fake) LookupNetwork(ctx context.Context, name string) (hypervisor.NetworkInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "LookupNetwork", name); err != nil {
		return hypervisor.NetworkInfo{}, err
	}
	n, err := f.network("look up network", name)
	if err != nil {
		return hypervisor.NetworkInfo{}, err
	}
	return n.NetworkInfo, nil
}

// ListNetworks returns every network, sorted by name.
func (f *Fake) ListNetworks(ctx context.Context) ([]hypervisor.NetworkInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "ListNetworks", ""); err != nil {
		return nil, err
	}
	out := make([]hypervisor.NetworkInfo, 0, len(f.networks))
	for _, n := range f.networks {
		out = append(out, n.NetworkInfo)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// NetworkLeases returns what SetLeases set.
func (f *Fake) NetworkLeases(ctx context.Context, name string) ([]hypervisor.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "NetworkLeases", name); err != nil {
		return nil, err
	}
	if _, err := f.network("get DHCP leases of network", name); err != nil {
		return nil, err
	}
	return append([]hypervisor.Lease(nil), f.leases[name]...), nil
}

// NetworkPortOwners names the active domains with an interface on the
// network.
func (f *Fake) NetworkPortOwners(ctx context.Context, name string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "NetworkPortOwners", name); err != nil {
		return nil, err
	}
	if _, err := f.network("list ports of network", name); err != nil {
		return nil, err
	}
	var out []string
	for _, d := range f.domains {
		if !d.State.Active() {
			continue
		}
		for _, i := range interfaces(d.liveXML) {
			if i.Source != nil && i.Source.Network != nil && i.Source.Network.Network == name {
				out = append(out, d.Name)
				break
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// interfaces returns the interfaces of a domain XML (none if it does not
// parse).
func interfaces(doc string) []libvirtxml.DomainInterface {
	var d libvirtxml.Domain
	if doc == "" || d.Unmarshal(doc) != nil || d.Devices == nil {
		return nil
	}
	return d.Devices.Interfaces
}

// checkNetworks fails like libvirt's domain start when an interface's
// network is missing or inactive. Callers hold f.mu.
func (f *Fake) checkNetworks(op, name, doc string) error {
	for _, i := range interfaces(doc) {
		if i.Source == nil || i.Source.Network == nil {
			continue
		}
		nn := i.Source.Network.Network
		n, ok := f.networks[nn]
		if !ok {
			return errNoNetwork(op, nn)
		}
		if !n.Active {
			return &Error{Op: op + " " + name, Msg: fmt.Sprintf("Requested operation is not valid: network '%s' is not active", nn)}
		}
	}
	return nil
}

func macOf(i libvirtxml.DomainInterface) string {
	if i.MAC == nil {
		return ""
	}
	return strings.ToLower(i.MAC.Address)
}

// editInterfaces applies f to the interfaces of a domain XML.
func editInterfaces(doc string, edit func([]libvirtxml.DomainInterface) ([]libvirtxml.DomainInterface, error)) (string, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(doc); err != nil {
		return "", err
	}
	if d.Devices == nil {
		d.Devices = &libvirtxml.DomainDeviceList{}
	}
	ifs, err := edit(d.Devices.Interfaces)
	if err != nil {
		return "", err
	}
	d.Devices.Interfaces = ifs
	return d.Marshal()
}

func parseInterface(op, doc string) (libvirtxml.DomainInterface, error) {
	var i libvirtxml.DomainInterface
	if err := i.Unmarshal(doc); err != nil {
		return i, &Error{Op: op, Msg: "XML error: the fake attaches interfaces only: " + err.Error()}
	}
	return i, nil
}

// interfaceCall checks what attaching and detaching an interface check
// first, under f.mu: the call may go on (method for Fail and Block), the
// domain exists, doc is an interface, and a live change has the domain
// running. op names the call in errors.
func (f *Fake) interfaceCall(ctx context.Context, method, op, name, doc string, live bool) (*domain, libvirtxml.DomainInterface, error) {
	if err := f.enter(ctx, method, name); err != nil {
		return nil, libvirtxml.DomainInterface{}, err
	}
	d, ok := f.domains[name]
	if !ok {
		return nil, libvirtxml.DomainInterface{}, f.errNoDomain(op, name)
	}
	nic, err := parseInterface(op, doc)
	if err != nil {
		return nil, nic, err
	}
	if live && !d.State.Active() {
		return nil, nic, invalid(op, name, "domain is not running")
	}
	return d, nic, nil
}

// attachInterface adds an interface to the persistent definition, and to
// the running domain when live is set. A MAC the domain has already is refused.
func (f *Fake) attachInterface(ctx context.Context, name, doc string, live bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	op := "attach device to domain"
	d, nic, err := f.interfaceCall(ctx, "AttachDevice", op, name, doc, live)
	if err != nil {
		return err
	}
	add := func(ifs []libvirtxml.DomainInterface) ([]libvirtxml.DomainInterface, error) {
		for _, i := range ifs {
			if macOf(i) != "" && macOf(i) == macOf(nic) {
				return nil, &Error{Op: op + " " + name, Msg: "operation failed: domain already has an interface with MAC " + macOf(nic)}
			}
		}
		return append(ifs, nic), nil
	}
	if live {
		if err := f.checkNetworks(op, name, "<domain><devices>"+doc+"</devices></domain>"); err != nil {
			return err
		}
		x, err := editInterfaces(d.liveXML, add)
		if err != nil {
			return err
		}
		d.liveXML = x
	}
	x, err := editInterfaces(d.xml, add)
	if err != nil {
		return err
	}
	d.xml = x
	return nil
}

// detachInterface removes the interface with the device XML's MAC.
func (f *Fake) detachInterface(ctx context.Context, name, doc string, live bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	op := "detach device from domain"
	d, nic, err := f.interfaceCall(ctx, "DetachDevice", op, name, doc, live)
	if err != nil {
		return err
	}
	remove := func(ifs []libvirtxml.DomainInterface) ([]libvirtxml.DomainInterface, error) {
		for k, i := range ifs {
			if macOf(i) == macOf(nic) {
				return append(ifs[:k:k], ifs[k+1:]...), nil
			}
		}
		return nil, &Error{Op: op + " " + name, Kind: hypervisor.ErrNotFound,
			Msg: fmt.Sprintf("operation failed: no device matching MAC address %s found", macOf(nic))}
	}
	var liveXML string
	if live {
		if liveXML, err = editInterfaces(d.liveXML, remove); err != nil {
			return err
		}
	}
	x, err := editInterfaces(d.xml, remove)
	if err != nil {
		return err
	}
	d.xml = x
	if live {
		d.liveXML = liveXML
	}
	return nil
}

// InterfaceAddresses answers from the leases (SetLeases) of the networks
// the running domain's interfaces are on, or from its Guest's Agent.
func (f *Fake) InterfaceAddresses(ctx context.Context, name string, src hypervisor.AddressSource) ([]hypervisor.Interface, error) {
	f.mu.Lock()
	if err := f.enter(ctx, "InterfaceAddresses", name); err != nil {
		f.mu.Unlock()
		return nil, err
	}
	op := "get " + src.String() + " addresses of domain"
	d, ok := f.domains[name]
	if !ok {
		f.mu.Unlock()
		return nil, f.errNoDomain(op, name)
	}
	if !d.State.Active() {
		f.mu.Unlock()
		return nil, invalid(op, name, "domain is not running")
	}
	switch src {
	case hypervisor.AddressesFromAgent:
		g := f.guest(name)
		f.mu.Unlock()
		if g.Agent == nil {
			return nil, &Error{Op: op + " " + name, Kind: hypervisor.ErrAgentUnavailable,
				Msg: "Guest agent is not responding: QEMU guest agent is not connected"}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s %s: %w", op, name, ctx.Err())
		case <-time.After(g.AgentDelay):
		}
		return append([]hypervisor.Interface(nil), g.Agent...), nil
	case hypervisor.AddressesFromLease:
		defer f.mu.Unlock()
		var out []hypervisor.Interface
		for k, i := range interfaces(d.liveXML) {
			if i.Source == nil || i.Source.Network == nil {
				continue
			}
			it := hypervisor.Interface{Name: fmt.Sprintf("vnet%d", k), MAC: macOf(i)}
			for _, l := range f.leases[i.Source.Network.Network] {
				if strings.EqualFold(l.MAC, it.MAC) {
					it.Addrs = append(it.Addrs, fmt.Sprintf("%s/%d", l.IP, l.Prefix))
				}
			}
			if len(it.Addrs) > 0 {
				out = append(out, it)
			}
		}
		return out, nil
	}
	f.mu.Unlock()
	return nil, nil
}
