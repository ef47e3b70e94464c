package network

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/godwit-project/godwit/internal/prereq"
)

// Route is a subnet the host already reaches somewhere.
type Route struct {
	Prefix netip.Prefix
	Dev    string
}

// LinkKind says what a host interface is.
type LinkKind int

// Kinds of host interfaces.
const (
	LinkMissing LinkKind = iota
	LinkBridge           // a Linux bridge
	LinkOther            // anything else (a NIC, a tap, an OVS port...)
)

// Host is what the service asks of the host's own network stack (the
// daemon runs on the host of its libvirtd).
type Host interface {
	// Routes returns the host's IPv4 routes and interface subnets, without
	// default routes.
	Routes() ([]Route, error)
	// Link says what the named interface is.
	Link(name string) LinkKind
	// OVSBridge reports whether Open vSwitch has a bridge of that name; an
	// error when Open vSwitch is not installed or not running.
	OVSBridge(ctx context.Context, name string) (bool, error)
	// Program says why a program libvirt runs for a network (dnsmasq) is
	// not installed, naming the feature and the package; nil when it is.
	Program(name string) error
}

// LocalHost is the Host this process runs on.
type LocalHost struct{}

var _ Host = LocalHost{}

// Routes reads /proc/net/route and the interfaces' addresses.
func (LocalHost) Routes() ([]Route, error) {
	var out []Route
	f, err := os.Open("/proc/net/route")
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) < 8 {
				continue
			}
			dst, err1 := strconv.ParseUint(fl[1], 16, 32)
			mask, err2 := strconv.ParseUint(fl[7], 16, 32)
			if err1 != nil || err2 != nil || mask == 0 {
				continue
			}
			var d, m [4]byte
			binary.LittleEndian.PutUint32(d[:], uint32(dst))
			binary.LittleEndian.PutUint32(m[:], uint32(mask))
			p := netip.PrefixFrom(netip.AddrFrom4(d), maskBits(netip.AddrFrom4(m))).Masked()
			out = append(out, Route{Prefix: p, Dev: fl[0]})
		}
	}
	ifs, ierr := net.Interfaces()
	if ierr != nil && err != nil {
		return nil, fmt.Errorf("read the host's routes: %v; %v", err, ierr)
	}
	for _, i := range ifs {
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP.To4())
			if !ok || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
				continue
			}
			bits, _ := ipn.Mask.Size()
			if bits == 0 {
				continue
			}
			out = append(out, Route{Prefix: netip.PrefixFrom(ip, bits).Masked(), Dev: i.Name})
		}
	}
	return out, nil
}

// Link looks in /sys/class/net.
func (LocalHost) Link(name string) LinkKind {
	if name == "" || strings.Contains(name, "/") {
		return LinkMissing
	}
	dir := filepath.Join("/sys/class/net", name)
	if _, err := os.Stat(dir); err != nil {
		return LinkMissing
	}
	if _, err := os.Stat(filepath.Join(dir, "bridge")); err == nil {
		return LinkBridge
	}
	return LinkOther
}

// OVSBridge runs ovs-vsctl br-exists.
func (LocalHost) OVSBridge(ctx context.Context, name string) (bool, error) {
	bin, err := exec.LookPath("ovs-vsctl")
	if err != nil {
		return false, errors.New("Open vSwitch is not installed here (no ovs-vsctl; Debian's package is openvswitch-switch)")
	}
	out, err := exec.CommandContext(ctx, bin, "--timeout=5", "br-exists", name).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ee) && ee.ExitCode() == 2:
		return false, nil
	}
	return false, fmt.Errorf("ask Open vSwitch about bridge %s (is ovsdb-server running?): %v: %s", name, err, strings.TrimSpace(string(out)))
}

// Program looks for the program where libvirtd would (internal/prereq).
func (LocalHost) Program(name string) error { return prereq.Program(name) }

// FixedHost is a Host with given facts, for tests.
type FixedHost struct {
	RouteList []Route
	Links     map[string]LinkKind
	OVS       map[string]bool
	// OVSErr, when set, is what OVSBridge fails with (no Open vSwitch).
	OVSErr error
	// Missing are programs that are not installed, with the error each gives.
	Missing map[string]error
}

var _ Host = (*FixedHost)(nil)

// Routes returns RouteList.
func (h *FixedHost) Routes() ([]Route, error) { return h.RouteList, nil }

// Link returns what Links says (LinkMissing for names it lacks).
func (h *FixedHost) Link(name string) LinkKind { return h.Links[name] }

// Program returns what Missing says.
func (h *FixedHost) Program(name string) error { return h.Missing[name] }

// OVSBridge returns what OVS says.
func (h *FixedHost) OVSBridge(_ context.Context, name string) (bool, error) {
	if h.OVSErr != nil {
		return false, h.OVSErr
	}
	return h.OVS[name], nil
}
