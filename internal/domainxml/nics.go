package domainxml

import (
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// NIC is a network interface: the libvirt network it plugs into, its MAC
// and its device model.
type NIC struct {
	Network string // the libvirt network's name
	MAC     string
	Model   string // virtio, e1000, e1000e, rtl8139
	Queues  int    // virtio multiqueue; 0 or 1: one queue
}

// Interface returns the libvirt interface of a NIC, as the domain holds it
// and as hot-plug attaches it.
func Interface(n NIC) (libvirtxml.DomainInterface, error) {
	if n.Network == "" || n.MAC == "" {
		return libvirtxml.DomainInterface{}, fmt.Errorf("NIC %q has no network or MAC", n.MAC)
	}
	model := n.Model
	if model == "" {
		model = "virtio"
	}
	i := libvirtxml.DomainInterface{
		MAC:    &libvirtxml.DomainInterfaceMAC{Address: n.MAC},
		Source: &libvirtxml.DomainInterfaceSource{Network: &libvirtxml.DomainInterfaceSourceNetwork{Network: n.Network}},
		Model:  &libvirtxml.DomainInterfaceModel{Type: model},
	}
	nicQueues(n, &i)
	return i, nil
}

// InterfaceXML is Interface as XML, for attaching and detaching.
func InterfaceXML(n NIC) (string, error) {
	i, err := Interface(n)
	if err != nil {
		return "", err
	}
	return i.Marshal()
}

// nics adds the NICs in order (the guest sees them in PCI slot order).
func nics(in *Input, d *libvirtxml.Domain) error {
	for _, n := range in.NICs {
		i, err := Interface(n)
		if err != nil {
			return err
		}
		d.Devices.Interfaces = append(d.Devices.Interfaces, i)
	}
	return nil
}

// TapDevices maps the MACs of a running domain's interfaces to their host
// tap devices (vnet0...), read from its live XML.
func TapDevices(domainXML string) map[string]string {
	var d libvirtxml.Domain
	out := map[string]string{}
	if d.Unmarshal(domainXML) != nil || d.Devices == nil {
		return out
	}
	for _, i := range d.Devices.Interfaces {
		if i.MAC != nil && i.Target != nil {
			out[strings.ToLower(i.MAC.Address)] = i.Target.Dev
		}
	}
	return out
}

// HasInterface reports whether a domain XML has an interface with mac.
func HasInterface(domainXML, mac string) bool {
	var d libvirtxml.Domain
	if d.Unmarshal(domainXML) != nil || d.Devices == nil {
		return false
	}
	for _, i := range d.Devices.Interfaces {
		if i.MAC != nil && strings.EqualFold(i.MAC.Address, mac) {
			return true
		}
	}
	return false
}
