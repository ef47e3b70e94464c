package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
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

func vmSetCmd(g *globals) *cobra.Command {
	var memory, readBytes, writeBytes, disk string
	var cpus, readIOPS, writeIOPS int
	var pins []string
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "set NAME [--memory SIZE] [--cpus N] [--pin VCPU:HOSTCPUS] [--disk D --read-bytes SIZE --write-bytes SIZE --iops-read N --iops-write N]",
		Short: "Change a VM's memory, vCPUs, pinning or disk I/O limits, live where QEMU can",
		Long: `Set changes a few settings of a VM through the same path as vm apply. On a
running VM each change is made live and in its definition, or refused with
why when QEMU cannot make it live:

  --memory     the balloon's target, up to the spec's maxMemory
  --cpus       vCPUs hot-added up to maxCpus (fewer: at the next start)
  --pin        a vCPU to host CPUs, e.g. --pin 0:1 --pin 1:2-3
  --iops-read, --iops-write, --read-bytes, --write-bytes
               the I/O limits of --disk (default the first disk); 0 lifts one

A stopped VM gets the changes in its definition. The stored spec always
matches what runs: vm show shows it.`,
		Example: `  godwit vm set web1 --memory 512MiB
  godwit vm set web1 --cpus 2 --pin 1:3
  godwit vm set web1 --iops-read 200 --write-bytes 20MiB`,
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: completeVMs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			var set api.VMSet
			f := cmd.Flags()
			if f.Changed("memory") {
				m, err := api.ParseSize(memory)
				if err != nil {
					return usagef("--memory: %v", err)
				}
				set.Memory = m
			}
			set.CPUs = cpus
			for _, p := range pins {
				vcpu, host, ok := strings.Cut(p, ":")
				n, err := strconv.Atoi(vcpu)
				if !ok || err != nil || host == "" {
					return usagef("--pin %q: want VCPU:HOSTCPUS, e.g. 0:1 or 1:2-3", p)
				}
				set.Pin = append(set.Pin, api.CPUPin{VCPU: n, HostCPUs: host})
			}
			limitFlags := f.Changed("read-bytes") || f.Changed("write-bytes") || f.Changed("iops-read") || f.Changed("iops-write")
			if limitFlags || disk != "" {
				if !limitFlags {
					return usagef("--disk: give the limits to set (--iops-read, --iops-write, --read-bytes, --write-bytes)")
				}
				c, err := g.client()
				if err != nil {
					return err
				}
				v, err := c.GetVM(cmd.Context(), name)
				if err != nil {
					return err
				}
				lim, err := mergeLimits(v, disk, f.Changed, readBytes, writeBytes, readIOPS, writeIOPS)
				if err != nil {
					return err
				}
				set.Disk, set.Limits = disk, &lim
			}
			if set.Memory == 0 && set.CPUs == 0 && len(set.Pin) == 0 && set.Limits == nil {
				return usagef("nothing to set: give --memory, --cpus, --pin or a limit")
			}
			_, final, err := startOp(cmd.Context(), g, w, func(c *client.Client, ctx context.Context) (api.Operation, error) {
				return c.SetVM(ctx, name, set)
			})
			if err != nil || w.noWait {
				return err
			}
			return printApplyResult(g, name, final)
		},
	}
	f := cmd.Flags()
	f.StringVar(&memory, "memory", "", "new memory, e.g. 512MiB (live through the balloon, up to maxMemory)")
	f.IntVar(&cpus, "cpus", 0, "new number of vCPUs (hot-added up to maxCpus)")
	f.StringArrayVar(&pins, "pin", nil, "pin a vCPU to host CPUs: VCPU:HOSTCPUS (repeatable)")
	f.StringVar(&disk, "disk", "", "the disk the I/O limits are for (default: the first)")
	f.StringVar(&readBytes, "read-bytes", "", "read bytes per second, e.g. 50MiB (0: no limit)")
	f.StringVar(&writeBytes, "write-bytes", "", "written bytes per second (0: no limit)")
	f.IntVar(&readIOPS, "iops-read", 0, "read operations per second (0: no limit)")
	f.IntVar(&writeIOPS, "iops-write", 0, "write operations per second (0: no limit)")
	w.add(f)
	return cmd
}

// mergeLimits is the disk's limits with the flags given replacing theirs.
func mergeLimits(v api.VM, disk string, changed func(string) bool, readBytes, writeBytes string, readIOPS, writeIOPS int) (api.DiskLimits, error) {
	var lim api.DiskLimits
	found := false
	for i, d := range v.Spec.Disks {
		if d.Name == disk || (disk == "" && i == 0) {
			found = true
			if d.Limits != nil {
				lim = *d.Limits
			}
			break
		}
	}
	if !found {
		return lim, usagef("--disk: vm %s has no disk %q", v.Name, disk)
	}
	for flag, p := range map[string]struct {
		text string
		to   *api.Size
	}{"read-bytes": {readBytes, &lim.ReadBytes}, "write-bytes": {writeBytes, &lim.WriteBytes}} {
		if changed(flag) {
			n, err := api.ParseSize(p.text)
			if err != nil {
				return lim, usagef("--%s: %v", flag, err)
			}
			*p.to = n
		}
	}
	if changed("iops-read") {
		lim.ReadIOPS = readIOPS
	}
	if changed("iops-write") {
		lim.WriteIOPS = writeIOPS
	}
	return lim, nil
}

// printApplyResult prints what an apply or a set changed: live, or in
// the definition.
func printApplyResult(g *globals, name string, final api.Operation) error {
	var res api.ApplyResult
	if err := decodeResult(final, &res); err != nil {
		return err
	}
	if g.output != "table" {
		return printValue(g.out, g.output, res)
	}
	if len(res.Changes) == 0 {
		fmt.Fprintf(g.out, "vm %s: nothing to change\n", name)
		return nil
	}
	live := map[string]bool{}
	for _, l := range res.Live {
		live[l] = true
	}
	fmt.Fprintf(g.out, "vm %s:\n", name)
	for _, ch := range res.Changes {
		if live[ch] {
			ch += " (live)"
		}
		fmt.Fprintf(g.out, "  %s\n", ch)
	}
	return nil
}
