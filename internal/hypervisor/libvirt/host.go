package libvirt

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

// HostInfo returns the host's facts. The static ones are read once per
// connection; free memory is read every time.
func (c *Conn) HostInfo(ctx context.Context) (hypervisor.HostInfo, error) {
	c.mu.Lock()
	cached := c.info
	c.mu.Unlock()
	if cached == nil {
		info, err := do(ctx, c, "read host facts", readHostInfo)
		if err != nil {
			return hypervisor.HostInfo{}, err
		}
		c.mu.Lock()
		c.info = &info
		c.mu.Unlock()
		cached = &info
	}
	info := *cached
	free, err := do(ctx, c, "read free memory", func(l *golibvirt.Libvirt) (uint64, error) {
		return l.NodeGetFreeMemory()
	})
	if err != nil {
		return hypervisor.HostInfo{}, err
	}
	info.FreeBytes = free
	// libvirt counts the memory of NUMA nodes, which on some cloud VMs
	// misses hot-plugged memory; the daemon runs on libvirtd's host, so
	// the kernel's own count is the better one when it is larger.
	if total, avail, ok := procMeminfo(); ok {
		info.MemoryBytes = max(info.MemoryBytes, total)
		info.FreeBytes = max(info.FreeBytes, avail)
	}
	return info, nil
}

// procMeminfo reads MemTotal and MemAvailable from /proc/meminfo.
func procMeminfo() (total, avail uint64, ok bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "MemTotal:":
			total = v * 1024
		case "MemAvailable:":
			avail = v * 1024
		}
	}
	return total, avail, total > 0
}

func readHostInfo(l *golibvirt.Libvirt) (hypervisor.HostInfo, error) {
	var info hypervisor.HostInfo
	var err error
	if info.Hostname, err = l.ConnectGetHostname(); err != nil {
		return info, err
	}
	lib, err := l.ConnectGetLibVersion()
	if err != nil {
		return info, err
	}
	info.LibvirtVersion = version(lib)
	if qemu, err := l.ConnectGetVersion(); err == nil {
		info.QEMUVersion = version(qemu)
	}
	model, memKiB, cpus, _, nodes, _, _, _, err := l.NodeGetInfo()
	if err != nil {
		return info, err
	}
	info.MemoryBytes, info.CPUs, info.NUMANodes = memKiB*1024, int(cpus), int(nodes)
	info.CPUModel = int8String(model[:])

	capsXML, err := l.Capabilities()
	if err != nil {
		return info, err
	}
	var caps libvirtxml.Caps
	if err := caps.Unmarshal(string(capsXML)); err != nil {
		return info, fmt.Errorf("parse capabilities: %w", err)
	}
	if caps.Host.CPU != nil && caps.Host.CPU.Model != "" {
		info.CPUModel = caps.Host.CPU.Model
	}
	seen := map[string]bool{}
	for _, g := range caps.Guests {
		if g.Arch.Name != "x86_64" || g.OSType != "hvm" {
			continue
		}
		for _, d := range g.Arch.Domains {
			seen[d.Type] = true
		}
	}
	for t := range seen {
		info.VirtTypes = append(info.VirtTypes, t)
	}
	sort.Strings(info.VirtTypes)
	info.QEMU = dacLabel(caps.Host.SecModel)

	info.MaxVCPUs = 255
	if dc, err := l.ConnectGetDomainCapabilities(nil, golibvirt.OptString{"x86_64"}, nil, golibvirt.OptString{"qemu"}, 0); err == nil {
		var caps libvirtxml.DomainCaps
		if caps.Unmarshal(dc) == nil && caps.VCPU != nil && caps.VCPU.Max > 0 {
			info.MaxVCPUs = int(caps.VCPU.Max)
		}
	}
	return info, nil
}

// dacLabel reads the user and group QEMU runs as from the DAC security
// model's base label ("+64055:+64055"), the same for kvm and qemu domains.
func dacLabel(models []libvirtxml.CapsHostSecModel) *hypervisor.DACLabel {
	for _, m := range models {
		if m.Name != "dac" {
			continue
		}
		for _, l := range m.Labels {
			u, g, ok := strings.Cut(l.Value, ":")
			uid, err1 := strconv.Atoi(strings.TrimPrefix(u, "+"))
			gid, err2 := strconv.Atoi(strings.TrimPrefix(g, "+"))
			if ok && err1 == nil && err2 == nil {
				return &hypervisor.DACLabel{UID: uid, GID: gid}
			}
		}
	}
	return nil
}

// version turns libvirt's major*1e6+minor*1e3+micro into "9.0.0".
func version(v uint64) string {
	return fmt.Sprintf("%d.%d.%d", v/1000000, v/1000%1000, v%1000)
}

func int8String(b []int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

// Ping checks that libvirt answers a trivial call.
func (c *Conn) Ping(ctx context.Context) error {
	_, err := do(ctx, c, "ping libvirt", func(l *golibvirt.Libvirt) (uint64, error) {
		return l.ConnectGetLibVersion()
	})
	return err
}
