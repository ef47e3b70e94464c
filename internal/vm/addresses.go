package vm

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/domainxml"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// Bounds on asking for guest addresses: a VM's agent that does not answer
// (or a busy libvirt) must not hold up show or list.
const (
	showAddrTimeout  = 3 * time.Second
	listAddrTimeout  = 2 * time.Second
	listAgentWorkers = 8
)

// addrSet collects a VM's addresses by NIC MAC, without duplicates.
type addrSet map[string][]api.Address

func (a addrSet) add(mac string, src hypervisor.AddressSource, guestIf string, addrs ...string) {
	mac = strings.ToLower(mac)
	for _, ip := range addrs {
		if p, err := netip.ParsePrefix(ip); err == nil && (p.Addr().IsLinkLocalUnicast() || p.Addr().IsLoopback()) {
			continue
		}
		dup := false
		for _, have := range a[mac] {
			if have.IP == ip {
				dup = true
				break
			}
		}
		if !dup {
			a[mac] = append(a[mac], api.Address{IP: ip, Source: src.String(), Interface: guestIf})
		}
	}
}

func (a addrSet) addInterfaces(ifs []hypervisor.Interface, src hypervisor.AddressSource) {
	for _, i := range ifs {
		guestIf := ""
		if src == hypervisor.AddressesFromAgent {
			guestIf = i.Name
		}
		a.add(i.MAC, src, guestIf, i.Addrs...)
	}
}

func (a addrSet) fill(v *api.VM) {
	for i := range v.NICs {
		v.NICs[i].Addresses = a[v.NICs[i].MAC]
	}
}

func running(st api.VMState) bool { return st == api.VMRunning || st == api.VMPaused }

// bridged reports whether a NIC is on a network whose DHCP godwit does not
// run: its address can only come from the agent or the ARP table.
func bridged(n nicRecord) bool { return n.Type == api.NetworkBridge || n.Type == api.NetworkOVS }

// askGuest adds what the agent (and, for bridged NICs, the host's ARP
// table) says of one VM. Errors only mean fewer addresses.
func (s *Service) askGuest(ctx context.Context, rec record, set addrSet) {
	if ifs, err := s.hv.InterfaceAddresses(ctx, rec.Name, hypervisor.AddressesFromAgent); err == nil {
		set.addInterfaces(ifs, hypervisor.AddressesFromAgent)
	}
	for _, n := range rec.NICs {
		if bridged(n) && len(set[n.MAC]) == 0 {
			if ifs, err := s.hv.InterfaceAddresses(ctx, rec.Name, hypervisor.AddressesFromARP); err == nil {
				set.addInterfaces(ifs, hypervisor.AddressesFromARP)
			}
			break
		}
	}
}

// addressesOne fills in one VM's NIC addresses and tap devices.
func (s *Service) addressesOne(ctx context.Context, v *api.VM, rec record) {
	if !running(v.State) || len(v.NICs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, showAddrTimeout)
	defer cancel()
	set := addrSet{}
	if ifs, err := s.hv.InterfaceAddresses(ctx, rec.Name, hypervisor.AddressesFromLease); err == nil {
		set.addInterfaces(ifs, hypervisor.AddressesFromLease)
	}
	s.askGuest(ctx, rec, set)
	set.fill(v)
	if doc, err := s.hv.XML(ctx, rec.Name, false); err == nil {
		taps := domainxml.TapDevices(doc)
		for i := range v.NICs {
			v.NICs[i].Device = taps[v.NICs[i].MAC]
		}
	}
}

// addressesAll fills in the addresses of many VMs cheaply: one lease query
// per network, and agent queries in parallel, all within listAddrTimeout.
func (s *Service) addressesAll(ctx context.Context, vms []api.VM, recs map[string]record) {
	var todo []int
	nets := map[string]bool{}
	for i, v := range vms {
		if r, ok := recs[v.Name]; ok && running(v.State) && len(r.NICs) > 0 {
			todo = append(todo, i)
			for _, n := range r.NICs {
				if !bridged(n) {
					nets[n.Libvirt] = true
				}
			}
		}
	}
	if len(todo) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, listAddrTimeout)
	defer cancel()
	leases := addrSet{}
	for n := range nets {
		ls, err := s.hv.NetworkLeases(ctx, n)
		if err != nil {
			continue
		}
		for _, l := range ls {
			leases.add(l.MAC, hypervisor.AddressesFromLease, "", l.IP+"/"+strconv.Itoa(l.Prefix))
		}
	}
	sets := make([]addrSet, len(todo))
	sem := make(chan struct{}, listAgentWorkers)
	var wg sync.WaitGroup
	for k, i := range todo {
		rec := recs[vms[i].Name]
		set := addrSet{}
		for _, n := range rec.NICs {
			if ls := leases[n.MAC]; len(ls) > 0 {
				set[n.MAC] = append(set[n.MAC], ls...)
			}
		}
		sets[k] = set
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				return
			}
			s.askGuest(ctx, rec, set)
		}()
	}
	wg.Wait()
	for k, i := range todo {
		sets[k].fill(&vms[i])
	}
}
