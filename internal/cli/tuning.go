package cli

import (
	"fmt"
	"strings"

	"github.com/godwit-project/godwit/api"
)

// tuningFields are the lines vm show prints about a VM's resources and
// tuning (issue 13); none for a VM without tuning.
func tuningFields(v api.VM) [][2]string {
	s := v.Spec
	var kv [][2]string
	if s.MaxCPUs > s.CPUs {
		kv = append(kv, [2]string{"Max CPUs", fmt.Sprintf("%d (cpus can be raised live up to it)", s.MaxCPUs)})
	}
	if v.CPU != "" {
		kv = append(kv, [2]string{"CPU model", v.CPU})
	}
	if c := s.CPU; c != nil {
		if c.Sockets != 0 || c.Cores != 0 || c.Threads != 0 {
			kv = append(kv, [2]string{"Topology", fmt.Sprintf("%d socket(s) x %d core(s) x %d thread(s)", max(c.Sockets, 1), max(c.Cores, 1), max(c.Threads, 1))})
		}
		if len(c.Pin) > 0 {
			var p []string
			for _, pin := range c.Pin {
				p = append(p, fmt.Sprintf("vCPU %d -> host CPU %s", pin.VCPU, pin.HostCPUs))
			}
			kv = append(kv, [2]string{"Pinning", strings.Join(p, ", ")})
		}
		if c.EmulatorPin != "" {
			kv = append(kv, [2]string{"Emulator pin", "host CPU " + c.EmulatorPin})
		}
	}
	if s.MaxMemory > s.Memory {
		kv = append(kv, [2]string{"Max memory", s.MaxMemory.Human() + " (memory changes live up to it, through the balloon)"})
	}
	if hp := s.Hugepages; hp != nil {
		size := hp.Size
		if size == 0 {
			size = 2 * api.MiB
		}
		reserved := "pre-reserved"
		if hp.Reserved != nil && !*hp.Reserved {
			reserved = "taken on demand"
		}
		kv = append(kv, [2]string{"Hugepages", fmt.Sprintf("%s pages, %s", size.Human(), reserved)})
	}
	if s.NUMA != nil {
		var n []string
		for i, node := range s.NUMA.Nodes {
			line := fmt.Sprintf("node %d: vCPUs %s, %s", i, node.CPUs, node.Memory.Human())
			if node.HostNodes != "" {
				line += " on host node " + node.HostNodes
			}
			n = append(n, line)
		}
		kv = append(kv, [2]string{"NUMA", strings.Join(n, "; ")})
	}
	if s.IOThreads > 0 {
		kv = append(kv, [2]string{"I/O threads", fmt.Sprint(s.IOThreads)})
	}
	for _, d := range s.Disks {
		var t []string
		for _, kvp := range [][2]string{{"cache", d.Cache}, {"io", d.IO}, {"discard", d.Discard}} {
			if kvp[1] != "" {
				t = append(t, kvp[0]+" "+kvp[1])
			}
		}
		if d.IOThread > 0 {
			t = append(t, fmt.Sprintf("iothread %d", d.IOThread))
		}
		if l := d.Limits; l != nil {
			t = append(t, "limits "+limitsText(*l))
		}
		if len(t) > 0 {
			kv = append(kv, [2]string{"Disk " + d.Name, strings.Join(t, ", ")})
		}
	}
	for i, n := range s.NICs {
		if n.Queues > 1 {
			kv = append(kv, [2]string{fmt.Sprintf("NIC %d", i), fmt.Sprintf("%d queues", n.Queues)})
		}
	}
	if w := s.Watchdog; w != nil {
		kv = append(kv, [2]string{"Watchdog", orDash(w.Model) + ", action " + orDash(w.Action)})
	}
	if r := s.RNG; r != nil {
		line := orDash(r.Source)
		if r.BytesPerSecond > 0 {
			line += fmt.Sprintf(", at most %d bytes/s", r.BytesPerSecond)
		}
		kv = append(kv, [2]string{"RNG", line})
	}
	for _, sh := range s.Shares {
		kv = append(kv, [2]string{"Share", sh.Source + " as virtiofs tag " + sh.Tag})
	}
	return kv
}

// limitsText is a disk's I/O limits for people.
func limitsText(l api.DiskLimits) string {
	var p []string
	if l.ReadBytes > 0 {
		p = append(p, "read "+l.ReadBytes.Human()+"/s")
	}
	if l.WriteBytes > 0 {
		p = append(p, "write "+l.WriteBytes.Human()+"/s")
	}
	if l.ReadIOPS > 0 {
		p = append(p, fmt.Sprintf("read %d IOPS", l.ReadIOPS))
	}
	if l.WriteIOPS > 0 {
		p = append(p, fmt.Sprintf("write %d IOPS", l.WriteIOPS))
	}
	if len(p) == 0 {
		return "none"
	}
	return strings.Join(p, ", ")
}
