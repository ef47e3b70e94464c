package vm

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// liveChange is a change QEMU can make to a running VM: what it is, the
// call that makes it (live and in the definition), and the call that
// takes it back.
type liveChange struct {
	what string
	do   func(ctx context.Context) error
	undo func(ctx context.Context) error
}

// tuningDiff is how the resources and tuning of two specs differ: what
// could change live, and what only the definition can take (with why).
type tuningDiff struct {
	live    []liveChange
	offline []string
}

// compareTuning lists the tuning changes from old to new. disks are the
// VM's disks as created (their targets); hostCPUs is the host's CPU count
// (an unpinned vCPU runs on every host CPU).
func (s *Service) compareTuning(name string, old, new api.VMSpec, disks []api.VMDisk, hostCPUs int) tuningDiff {
	var d tuningDiff
	off := func(format string, a ...any) { d.offline = append(d.offline, fmt.Sprintf(format, a...)) }
	live := func(what string, do, undo func(ctx context.Context) error) {
		d.live = append(d.live, liveChange{what: what, do: do, undo: undo})
	}
	sameMaxMem := api.MaxMemoryOf(old) == api.MaxMemoryOf(new)
	sameMaxCPUs := api.MaxCPUsOf(old) == api.MaxCPUsOf(new)

	// maxCpus and maxMemory are their own lines only where a spec says them.
	if api.MaxCPUsOf(old) != api.MaxCPUsOf(new) && (old.MaxCPUs != 0 || new.MaxCPUs != 0) {
		off("maxCpus: %d -> %d (QEMU sizes its vCPU slots at start)", api.MaxCPUsOf(old), api.MaxCPUsOf(new))
	}
	if api.MaxMemoryOf(old) != api.MaxMemoryOf(new) && (old.MaxMemory != 0 || new.MaxMemory != 0) {
		off("maxMemory: %s -> %s (QEMU sizes the guest's RAM at start)", api.MaxMemoryOf(old), api.MaxMemoryOf(new))
	}
	if old.CPUs != new.CPUs {
		what := fmt.Sprintf("cpus: %d -> %d", old.CPUs, new.CPUs)
		switch {
		case !sameMaxCPUs && old.MaxCPUs == 0 && new.MaxCPUs == 0 && new.CPUs > old.CPUs:
			off("%s (the VM has no spare vCPU slots to hot-add into: set maxCpus above cpus, which takes a restart)", what)
		case !sameMaxCPUs:
			off("%s", what)
		case new.CPUs < old.CPUs:
			off("%s (QEMU unplugs vCPUs only with the guest's help; godwit lowers cpus at the next start)", what)
		default:
			n, o := new.CPUs, old.CPUs
			// The undo unplugs them again, which needs the guest's help
			// (ACPI eject); a guest that does not give it keeps them.
			live(what, func(ctx context.Context) error { return s.hv.SetVCPUs(ctx, name, n, true) },
				func(ctx context.Context) error { return s.hv.SetVCPUs(ctx, name, o, true) })
		}
	}
	if old.Memory != new.Memory {
		what := fmt.Sprintf("memory: %s -> %s", old.Memory, new.Memory)
		switch {
		case !sameMaxMem && old.MaxMemory == 0 && new.MaxMemory == 0 && new.Memory > old.Memory:
			off("%s (the VM has no room to grow into live: set maxMemory above memory, which takes a restart)", what)
		case !sameMaxMem:
			off("%s", what)
		case !api.BalloonOf(old) || !api.BalloonOf(new):
			off("%s (the VM has no balloon, so memory changes at the next start; set maxMemory above memory for live changes)", what)
		default:
			n, o := uint64(new.Memory), uint64(old.Memory)
			live(what, func(ctx context.Context) error { return s.hv.SetMemory(ctx, name, n, true) },
				func(ctx context.Context) error { return s.hv.SetMemory(ctx, name, o, true) })
		}
	}
	if api.BalloonOf(old) != api.BalloonOf(new) {
		off("balloon: %t -> %t", api.BalloonOf(old), api.BalloonOf(new))
	}
	oc, nc := cpuOrZero(old.CPU), cpuOrZero(new.CPU)
	if oc.Mode != nc.Mode || oc.Model != nc.Model {
		off("cpu: model %s -> %s (the guest's CPU is set at start)", orNone(oc.Mode+" "+oc.Model), orNone(nc.Mode+" "+nc.Model))
	}
	if oc.Sockets != nc.Sockets || oc.Cores != nc.Cores || oc.Threads != nc.Threads {
		off("cpu: topology changed (set at start)")
	}
	oldPins, newPins := pinMap(oc.Pin), pinMap(nc.Pin)
	all := make([]int, hostCPUs)
	for i := range all {
		all[i] = i
	}
	for vcpu := range api.MaxCPUsOf(new) {
		o, n := oldPins[vcpu], newPins[vcpu]
		if o == n {
			continue
		}
		what := fmt.Sprintf("cpu.pin: vCPU %d -> host CPUs %s", vcpu, orAll(n))
		if vcpu >= new.CPUs {
			// Not online: its pinning waits in the definition.
			off("%s (vCPU %d is not online)", what, vcpu)
			continue
		}
		to, back := cpusOr(n, all), cpusOr(o, all)
		v := vcpu
		live(what, func(ctx context.Context) error { return s.hv.PinVCPU(ctx, name, v, to, true) },
			func(ctx context.Context) error { return s.hv.PinVCPU(ctx, name, v, back, true) })
	}
	if oc.EmulatorPin != nc.EmulatorPin {
		to, back := cpusOr(nc.EmulatorPin, all), cpusOr(oc.EmulatorPin, all)
		live(fmt.Sprintf("cpu.emulatorPin: host CPUs %s -> %s", orAll(oc.EmulatorPin), orAll(nc.EmulatorPin)),
			func(ctx context.Context) error { return s.hv.PinEmulator(ctx, name, to, true) },
			func(ctx context.Context) error { return s.hv.PinEmulator(ctx, name, back, true) })
	}
	for field, eq := range map[string]bool{
		"hugepages": reflect.DeepEqual(old.Hugepages, new.Hugepages), "numa": reflect.DeepEqual(old.NUMA, new.NUMA),
		"iothreads": old.IOThreads == new.IOThreads, "watchdog": reflect.DeepEqual(old.Watchdog, new.Watchdog),
		"rng": reflect.DeepEqual(old.RNG, new.RNG), "shares": reflect.DeepEqual(old.Shares, new.Shares),
	} {
		if !eq {
			off("%s: changed (set at start)", field)
		}
	}
	for i, od := range old.Disks {
		if i >= len(new.Disks) || new.Disks[i].Name != od.Name {
			continue // compare refuses these
		}
		nd := new.Disks[i]
		if od.Cache != nd.Cache || od.IO != nd.IO || od.Discard != nd.Discard || od.IOThread != nd.IOThread {
			off("disks[%d]: cache, io, discard or iothread changed (set when the disk is opened, at start)", i)
		}
		ol, nl := limitsOrZero(od.Limits), limitsOrZero(nd.Limits)
		if ol == nl {
			continue
		}
		target := ""
		for _, vd := range disks {
			if vd.Name == od.Name {
				target = vd.Target
			}
		}
		to, back := blockLimits(nl), blockLimits(ol)
		live(fmt.Sprintf("disks[%d].limits: %s -> %s", i, limitsString(ol), limitsString(nl)),
			func(ctx context.Context) error { return s.hv.SetBlockLimits(ctx, name, target, to, true) },
			func(ctx context.Context) error { return s.hv.SetBlockLimits(ctx, name, target, back, true) })
	}
	for i := range min(len(old.NICs), len(new.NICs)) {
		if old.NICs[i].Queues != new.NICs[i].Queues {
			off("nics[%d].queues: %d -> %d (set at start)", i, old.NICs[i].Queues, new.NICs[i].Queues)
		}
	}
	slices.Sort(d.offline)
	return d
}

func cpuOrZero(c *api.CPUTuning) api.CPUTuning {
	if c == nil {
		return api.CPUTuning{}
	}
	return *c
}

func limitsOrZero(l *api.DiskLimits) api.DiskLimits {
	if l == nil {
		return api.DiskLimits{}
	}
	return *l
}

func blockLimits(l api.DiskLimits) hypervisor.BlockLimits {
	return hypervisor.BlockLimits{ReadBytesSec: uint64(l.ReadBytes), WriteBytesSec: uint64(l.WriteBytes), ReadIOPSSec: uint64(l.ReadIOPS), WriteIOPSSec: uint64(l.WriteIOPS)}
}

func limitsString(l api.DiskLimits) string {
	if l == (api.DiskLimits{}) {
		return "none"
	}
	return fmt.Sprintf("read %s/s %d IOPS, write %s/s %d IOPS", l.ReadBytes, l.ReadIOPS, l.WriteBytes, l.WriteIOPS)
}

func pinMap(pins []api.CPUPin) map[int]string {
	m := map[int]string{}
	for _, p := range pins {
		m[p.VCPU] = p.HostCPUs
	}
	return m
}

func cpusOr(list string, all []int) []int {
	if list == "" {
		return all
	}
	cpus, _ := ParseCPUList(list)
	return cpus
}

func orAll(list string) string {
	if list == "" {
		return "all"
	}
	return list
}

func orNone(s string) string {
	if s = strings.TrimSpace(s); s == "" {
		return "default"
	}
	return s
}

// Set changes some settings of a VM (vm set) through Apply: live where
// QEMU can, refused with why where it cannot while the VM runs.
func (s *Service) Set(ctx context.Context, name string, set api.VMSet) (api.Operation, error) {
	rec, err := s.managed(ctx, name)
	if err != nil {
		return api.Operation{}, err
	}
	spec, err := copySpec(rec.Spec)
	if err != nil {
		return api.Operation{}, err
	}
	if set.Memory == 0 && set.CPUs == 0 && len(set.Pin) == 0 && set.Limits == nil {
		return api.Operation{}, api.BadRequest("set: nothing to change (give memory, cpus, pin or limits)")
	}
	if set.Memory != 0 {
		if spec.MaxMemory != 0 && set.Memory > spec.MaxMemory {
			return api.Operation{}, api.BadRequest("memory: %s is above the VM's maxMemory (%s): memory changes live up to maxMemory only; raise maxMemory with vm apply (it takes a restart)", set.Memory.Human(), spec.MaxMemory.Human())
		}
		if spec.MaxMemory == 0 && set.Memory < spec.Memory {
			spec.MaxMemory = spec.Memory // keep the maximum where it was
		}
		spec.Memory = set.Memory
	}
	if set.CPUs != 0 {
		if spec.MaxCPUs != 0 && set.CPUs > spec.MaxCPUs {
			return api.Operation{}, api.BadRequest("cpus: %d is above the VM's maxCpus (%d): vCPUs are hot-added up to maxCpus only; raise maxCpus with vm apply (it takes a restart)", set.CPUs, spec.MaxCPUs)
		}
		if spec.MaxCPUs == 0 && set.CPUs < spec.CPUs {
			spec.MaxCPUs = spec.CPUs
		}
		spec.CPUs = set.CPUs
	}
	if len(set.Pin) > 0 {
		if spec.CPU == nil {
			spec.CPU = &api.CPUTuning{}
		}
		for _, p := range set.Pin {
			spec.CPU.Pin = slices.DeleteFunc(spec.CPU.Pin, func(o api.CPUPin) bool { return o.VCPU == p.VCPU })
			spec.CPU.Pin = append(spec.CPU.Pin, p)
		}
	}
	if set.Limits != nil {
		i := slices.IndexFunc(spec.Disks, func(d api.Disk) bool { return d.Name == set.Disk })
		if set.Disk == "" && len(spec.Disks) > 0 {
			i = 0
		}
		if i < 0 {
			return api.Operation{}, api.BadRequest("disk: vm %s has no disk %q", name, set.Disk)
		}
		l := *set.Limits
		spec.Disks[i].Limits = &l
	}
	return s.Apply(ctx, spec, ApplyOptions{})
}

// copySpec is a deep copy of a spec.
func copySpec(s api.VMSpec) (api.VMSpec, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return s, err
	}
	var out api.VMSpec
	return out, json.Unmarshal(b, &out)
}
