package vm

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/domainxml"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/network"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/revert"
	"github.com/godwit-project/godwit/internal/store"
)

// MaxNICs is the most NICs a VM can have (PCI slots of the pc machine).
const MaxNICs = 16

// Networks is what the service needs of internal/network.
type Networks interface {
	// Pin holds networks while a VM action relies on them and resolves
	// them; unknown ones are 400s naming field(i).
	Pin(ctx context.Context, names []string, field func(i int) string) ([]network.Ref, func(), error)
	// ByLibvirt names the network whose libvirt network is libvirtName;
	// a 404 when it is none of godwit's.
	ByLibvirt(ctx context.Context, libvirtName string) (network.Ref, error)
}

// nicRecord is a NIC as created: the MAC it got, and the libvirt network
// (and its type) it plugs into.
type nicRecord struct {
	Network string `json:"network"`
	MAC     string `json:"mac"`
	Model   string `json:"model"`
	Libvirt string `json:"libvirt"`
	Type    string `json:"type"`
}

var validModels = map[string]bool{api.NICVirtio: true, api.NICE1000: true, api.NICE1000E: true, api.NICRTL8139: true}

var networkNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// normalizeNIC lowercases a valid MAC and fills in the default model.
func normalizeNIC(n *api.NIC) {
	if m, err := network.NormalizeMAC("", n.MAC); err == nil {
		n.MAC = m
	}
	n.Model = strings.ToLower(n.Model)
	if n.Model == "" {
		n.Model = api.NICVirtio
	}
}

// validateNIC checks one NIC; field is e.g. "nics[0]".
func validateNIC(field string, n api.NIC) error {
	if n.Network == "" {
		return api.BadRequest("%s.network: missing (the name of a godwit network, e.g. default)", field)
	}
	if !networkNameRE.MatchString(n.Network) || len(n.Network) > network.MaxNameLen {
		return api.BadRequest("%s.network: %q is not a network name", field, n.Network)
	}
	if n.MAC != "" {
		if _, err := network.NormalizeMAC(field+".mac", n.MAC); err != nil {
			return err
		}
	}
	if !validModels[n.Model] {
		return api.BadRequest("%s.model: %q is not virtio, e1000, e1000e or rtl8139", field, n.Model)
	}
	return nil
}

// validateNICs checks the spec's NICs: each one, their number, and that
// no MAC is given twice.
func validateNICs(s api.VMSpec) error {
	if len(s.NICs) > MaxNICs {
		return api.BadRequest("nics: %d NICs is more than the %d a VM can have", len(s.NICs), MaxNICs)
	}
	macs := map[string]int{}
	for i, n := range s.NICs {
		field := fmt.Sprintf("nics[%d]", i)
		if err := validateNIC(field, n); err != nil {
			return err
		}
		if n.MAC == "" {
			continue
		}
		if j, dup := macs[n.MAC]; dup {
			return api.BadRequest("%s.mac: %s is also the MAC of nics[%d]", field, n.MAC, j)
		}
		macs[n.MAC] = i
	}
	return nil
}

// macOwners maps every MAC of this daemon's VMs to its VM, except vm's own.
func (s *Service) macOwners(ctx context.Context, except string) (map[string]string, error) {
	recs, err := store.ListJSON[record](ctx, s.store, bucket)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range recs {
		if r.Name == except {
			continue
		}
		for _, n := range r.NICs {
			out[n.MAC] = r.Name
		}
	}
	return out, nil
}

// planNICs pins the networks of nics and settles their MACs: a given MAC
// must be free on this daemon; a NIC without one keeps the MAC of the NIC
// at its place in keep (same network) or gets a new one. The caller must
// call release once the NICs are defined (or the action failed).
func (s *Service) planNICs(ctx context.Context, vm string, nics []api.NIC, keep []nicRecord, fieldOf func(i int) string) (out []nicRecord, release func(), err error) {
	release = func() {}
	if len(nics) == 0 {
		return nil, release, nil
	}
	if s.cfg.Networks == nil {
		return nil, nil, api.BadRequest("%s: this daemon runs without networks", fieldOf(0))
	}
	names := make([]string, len(nics))
	for i, n := range nics {
		names[i] = n.Network
	}
	refs, release, err := s.cfg.Networks.Pin(ctx, names, func(i int) string { return fieldOf(i) + ".network" })
	if err != nil {
		return nil, nil, err
	}
	owners, err := s.macOwners(ctx, vm)
	if err != nil {
		release()
		return nil, nil, err
	}
	taken := map[string]bool{}
	for _, n := range nics {
		if n.MAC != "" {
			taken[n.MAC] = true
		}
	}
	for i, n := range nics {
		mac := n.MAC
		if mac == "" && i < len(keep) && keep[i].Network == n.Network && !taken[keep[i].MAC] {
			mac = keep[i].MAC
		}
		if mac != "" {
			if other, ok := owners[mac]; ok {
				release()
				return nil, nil, api.Conflict("%s.mac: %s is already the MAC of a NIC of vm %s", fieldOf(i), mac, other)
			}
		}
		for mac == "" || owners[mac] != "" || taken[mac] && n.MAC != mac {
			mac = network.RandomMAC()
		}
		taken[mac] = true
		out = append(out, nicRecord{Network: n.Network, MAC: mac, Model: n.Model, Libvirt: refs[i].Libvirt, Type: refs[i].Type})
	}
	return out, release, nil
}

func nicsInput(nics []nicRecord) []domainxml.NIC {
	out := make([]domainxml.NIC, 0, len(nics))
	for _, n := range nics {
		out = append(out, domainxml.NIC{Network: n.Libvirt, MAC: n.MAC, Model: n.Model})
	}
	return out
}

func apiNICs(nics []nicRecord) []api.VMNIC {
	if len(nics) == 0 {
		return nil
	}
	out := make([]api.VMNIC, 0, len(nics))
	for _, n := range nics {
		out = append(out, api.VMNIC{Network: n.Network, MAC: n.MAC, Model: n.Model})
	}
	return out
}

// NetworkUsers names the VMs with a NIC on the network.
func (s *Service) NetworkUsers(ctx context.Context, networkName string) ([]string, error) {
	recs, err := store.ListJSON[record](ctx, s.store, bucket)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range recs {
		for _, n := range r.NICs {
			if n.Network == networkName {
				out = append(out, r.Name)
				break
			}
		}
	}
	return out, nil
}

// compareNICs lists NIC changes (all of them need the VM stopped).
func compareNICs(old []nicRecord, new []api.NIC) []string {
	var out []string
	for i := range max(len(old), len(new)) {
		switch {
		case i >= len(new):
			out = append(out, fmt.Sprintf("nics[%d]: remove the NIC %s on %s", i, old[i].MAC, old[i].Network))
		case i >= len(old):
			out = append(out, fmt.Sprintf("nics[%d]: add a NIC on %s", i, new[i].Network))
		case old[i].Network != new[i].Network:
			out = append(out, fmt.Sprintf("nics[%d].network: %s -> %s", i, old[i].Network, new[i].Network))
		case new[i].MAC != "" && new[i].MAC != old[i].MAC:
			out = append(out, fmt.Sprintf("nics[%d].mac: %s -> %s", i, old[i].MAC, new[i].MAC))
		case old[i].Model != new[i].Model:
			out = append(out, fmt.Sprintf("nics[%d].model: %s -> %s", i, old[i].Model, new[i].Model))
		}
	}
	return out
}

// actNIC: NICs plug in and out of running, paused and stopped VMs.
var actNIC = action{"nic", is(api.VMRunning, api.VMPaused, api.VMStopped, api.VMCrashed), func(vm string, st api.VMState) error {
	return api.Conflict("vm %s is %s; NICs change on running, paused or stopped VMs", vm, st)
}}

// AttachNIC plugs a NIC into a VM: into the running guest and its
// definition when it runs, into its definition when it is stopped.
func (s *Service) AttachNIC(ctx context.Context, name string, nic api.NIC) (api.Operation, error) {
	normalizeNIC(&nic)
	if err := validateNIC("nic", nic); err != nil {
		return api.Operation{}, err
	}
	rec, unlock, err := s.prepare(ctx, name, actNIC)
	if err != nil {
		return api.Operation{}, err
	}
	fail := func(err error) (api.Operation, error) { unlock(); return api.Operation{}, err }
	if len(rec.NICs) >= MaxNICs {
		return fail(api.Conflict("vm %s has %d NICs already, the most a VM can have", name, MaxNICs))
	}
	for _, n := range rec.NICs {
		if nic.MAC != "" && n.MAC == nic.MAC {
			return fail(api.Conflict("nic.mac: vm %s has a NIC with MAC %s already", name, nic.MAC))
		}
	}
	planned, release, err := s.planNICs(ctx, name, []api.NIC{nic}, nil, func(int) string { return "nic" })
	if err != nil {
		return fail(err)
	}
	nr := planned[0]
	op := s.ops.Start("vm.nic-attach", target(name), func(ctx context.Context, o *ops.Op) error {
		defer unlock()
		defer release()
		return s.attachNIC(ctx, o, name, nic, nr)
	})
	s.relabel(name, "vm."+actNIC.name, "operation "+op.ID+" (vm.nic-attach)")
	return op, nil
}

func (s *Service) attachNIC(ctx context.Context, o *ops.Op, name string, nic api.NIC, nr nicRecord) error {
	rec, err := s.getRecord(ctx, name)
	if err != nil {
		return err
	}
	d, err := s.hv.Lookup(ctx, name)
	if err != nil {
		return opError("attach a NIC to", name, err)
	}
	live := d.State.Active()
	doc, err := domainxml.InterfaceXML(domainxml.NIC{Network: nr.Libvirt, MAC: nr.MAC, Model: nr.Model})
	if err != nil {
		return err
	}
	r := revert.New()
	defer r.Fail()
	o.Progress(fmt.Sprintf("plugging NIC %s into network %s", nr.MAC, nr.Network), 0, 0, "")
	if err := s.hv.AttachDevice(ctx, name, doc, live); err != nil {
		return opError("attach a NIC to", name, err)
	}
	r.Add(func() { _ = s.hv.DetachDevice(context.Background(), name, doc, live) })
	rec.Spec.NICs = append(rec.Spec.NICs, nic)
	rec.NICs = append(rec.NICs, nr)
	if err := s.putRecord(ctx, rec); err != nil {
		return err
	}
	r.Success()
	s.log.Info("nic attached", "vm", name, "mac", nr.MAC, "network", nr.Network, "live", live)
	vm, err := s.Get(ctx, name)
	o.SetResult(vm)
	return err
}

// detachWait bounds how long a live detach waits for the guest to release
// the device.
const detachWait = 60 * time.Second

// NICRef names a VM's NIC: by MAC, or by network when the VM has one NIC
// on it.
type NICRef struct {
	MAC     string
	Network string
}

// DetachNIC unplugs a NIC, named by its MAC or by its network when the VM
// has one NIC there.
func (s *Service) DetachNIC(ctx context.Context, name string, req NICRef) (api.Operation, error) {
	rec, unlock, err := s.prepare(ctx, name, actNIC)
	if err != nil {
		return api.Operation{}, err
	}
	idx, err := findNIC(name, rec.NICs, req)
	if err != nil {
		unlock()
		return api.Operation{}, err
	}
	nr := rec.NICs[idx]
	op := s.ops.Start("vm.nic-detach", target(name), func(ctx context.Context, o *ops.Op) error {
		defer unlock()
		return s.detachNIC(ctx, o, name, nr)
	})
	s.relabel(name, "vm."+actNIC.name, "operation "+op.ID+" (vm.nic-detach)")
	return op, nil
}

func findNIC(vm string, nics []nicRecord, req NICRef) (int, error) {
	if req.MAC != "" {
		mac, err := network.NormalizeMAC("mac", req.MAC)
		if err != nil {
			return 0, err
		}
		for i, n := range nics {
			if n.MAC == mac {
				return i, nil
			}
		}
		return 0, api.NotFound("vm %s has no NIC with MAC %s", vm, mac)
	}
	found := -1
	for i, n := range nics {
		if n.Network == req.Network {
			if found >= 0 {
				return 0, api.BadRequest("vm %s has several NICs on network %s; name the NIC by its MAC", vm, req.Network)
			}
			found = i
		}
	}
	if found < 0 {
		return 0, api.NotFound("vm %s has no NIC on network %q", vm, req.Network)
	}
	return found, nil
}

func (s *Service) detachNIC(ctx context.Context, o *ops.Op, name string, nr nicRecord) error {
	d, err := s.hv.Lookup(ctx, name)
	if err != nil {
		return opError("detach a NIC from", name, err)
	}
	live := d.State.Active()
	doc, err := domainxml.InterfaceXML(domainxml.NIC{Network: nr.Libvirt, MAC: nr.MAC, Model: nr.Model})
	if err != nil {
		return err
	}
	o.Progress(fmt.Sprintf("unplugging NIC %s", nr.MAC), 0, 0, "")
	if err := s.hv.DetachDevice(ctx, name, doc, live); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
		return opError("detach a NIC from", name, err)
	}
	// The definition has lost the NIC: so does the record.
	rec, err := s.getRecord(ctx, name)
	if err != nil {
		return err
	}
	for i, n := range rec.NICs {
		if n.MAC == nr.MAC {
			rec.NICs = append(rec.NICs[:i:i], rec.NICs[i+1:]...)
			if i < len(rec.Spec.NICs) {
				rec.Spec.NICs = append(rec.Spec.NICs[:i:i], rec.Spec.NICs[i+1:]...)
			}
			break
		}
	}
	if err := s.putRecord(ctx, rec); err != nil {
		return err
	}
	if live {
		o.Progress(fmt.Sprintf("waiting for the guest to release NIC %s", nr.MAC), 0, 0, "")
		if err := s.waitUnplugged(ctx, name, nr.MAC); err != nil {
			return err
		}
	}
	s.log.Info("nic detached", "vm", name, "mac", nr.MAC, "network", nr.Network, "live", live)
	vm, err := s.Get(ctx, name)
	o.SetResult(vm)
	return err
}

// waitUnplugged waits until the running domain has no interface with mac
// (the guest acknowledged the unplug).
func (s *Service) waitUnplugged(ctx context.Context, name, mac string) error {
	deadline := time.Now().Add(detachWait)
	for {
		doc, err := s.hv.XML(ctx, name, false)
		if err != nil {
			if errors.Is(err, hypervisor.ErrNotFound) {
				return nil
			}
			return opError("detach a NIC from", name, err)
		}
		if !domainxml.HasInterface(doc, mac) {
			return nil
		}
		if time.Now().After(deadline) {
			return api.StatusErrorf(504, "vm %s: the guest did not release NIC %s within %s (does it handle PCI hot-unplug?); it is gone from the definition and goes from the VM at its next stop", name, mac, detachWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
