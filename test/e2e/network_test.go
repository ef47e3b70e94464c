package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/testenv"
	"github.com/godwit-project/godwit/test/sweep"
)

// daemonNetRE is the network prefix (and pool name) of a test daemon:
// never the default state dir's plain "godwit".
var daemonNetRE = regexp.MustCompile(`^godwit-[0-9a-f]{8}$`)

// removeNetworks destroys and undefines the libvirt networks of a test
// daemon (prefix-*), whatever the daemon did or did not clean up.
func removeNetworks(prefix string) {
	if !daemonNetRE.MatchString(prefix) {
		return
	}
	out, err := exec.Command("virsh", "-q", "-c", "qemu:///system", "net-list", "--all", "--name").Output()
	if err != nil {
		return
	}
	for _, n := range strings.Fields(string(out)) {
		if strings.HasPrefix(n, prefix+"-") {
			_ = exec.Command("virsh", "-q", "-c", "qemu:///system", "net-destroy", n).Run()
			_ = exec.Command("virsh", "-q", "-c", "qemu:///system", "net-undefine", n).Run()
		}
	}
}

// netSpec is a test guest that runs DHCP on its NICs, with NICs on nets.
func netSpec(t *testing.T, name string, nics ...api.NIC) api.VMSpec {
	s := guestSpec(t, name, "dhcp=1")
	s.Memory = 160 * api.MiB
	s.Disks = nil
	s.NICs = nics
	return s
}

func (d *Daemon) network(name string) api.Network {
	d.t.Helper()
	n, err := d.C.GetNetwork(ctxT(d.t, 30*time.Second), name)
	if err != nil {
		d.t.Fatalf("network %s: %v", name, err)
	}
	return n
}

func (d *Daemon) createNetwork(spec api.NetworkSpec) api.Network {
	d.t.Helper()
	n, err := d.C.CreateNetwork(ctxT(d.t, time.Minute), spec)
	if err != nil {
		d.t.Fatalf("create network %s: %v", spec.Name, err)
	}
	return n
}

// createFreeNetwork creates the network make(subnet) returns, on a random
// 10.x.y.0/24 that the daemon does not refuse as taken.
func (d *Daemon) createFreeNetwork(make func(subnet string) api.NetworkSpec) api.Network {
	d.t.Helper()
	for range 20 {
		b := []byte(uniq())
		subnet := fmt.Sprintf("10.%d.%d.0/24", 100+int(b[0])%150, int(b[1])*7%256)
		n, err := d.C.CreateNetwork(ctxT(d.t, time.Minute), make(subnet))
		if api.Status(err) == 409 && strings.Contains(err.Error(), "overlaps") {
			continue
		}
		if err != nil {
			d.t.Fatalf("create network on %s: %v", subnet, err)
		}
		return n
	}
	d.t.Fatal("no free subnet in 20 tries")
	return api.Network{}
}

// waitIP waits for the guest's DHCP client to report an address on iface
// (from the console offset on), and checks it is ip.
func (d *Daemon) waitIP(vm, iface, ip string, offset int64) {
	d.t.Helper()
	line := d.waitConsole(vm, `^GUEST-IP `+iface+` `, offset, 3*time.Minute)
	if got := strings.TrimPrefix(line, "GUEST-IP "+iface+" "); got != ip {
		d.t.Fatalf("vm %s got %s on %s, want its static lease %s", vm, got, iface, ip)
	}
}

// host returns the n-th host address of a subnet.
func host(t *testing.T, subnet string, n int) string {
	p := netip.MustParsePrefix(subnet)
	a := p.Addr()
	for range n {
		a = a.Next()
	}
	return a.String()
}

// The default network: made at first start on a /24 nothing else has, per
// daemon (two side by side get different ones), not made again after a
// restart or a delete, and not made at all with --no-default-network.
// Libvirt networks godwit did not create are listed as unmanaged.
func TestDefaultNetwork(t *testing.T) {
	a := StartDaemon(t)
	b := StartDaemon(t)
	off := StartDaemon(t, "--no-default-network")

	na, nb := a.network("default"), b.network("default")
	for _, n := range []api.Network{na, nb} {
		if !n.Managed || n.Type != api.NetworkNAT || !n.Active || !n.Autostart || !strings.HasSuffix(n.Subnet, "/24") || len(n.Bridge) > 15 {
			t.Fatalf("default network: %+v", n)
		}
		if out, err := virsh(t, "net-info", n.Libvirt); err != nil || !regexp.MustCompile(`Active:\s+yes`).MatchString(out) {
			t.Fatalf("virsh net-info %s: %v\n%s", n.Libvirt, err, out)
		}
		if n.Libvirt == "default" {
			t.Fatal("godwit took libvirt's own default network")
		}
	}
	if na.Libvirt == nb.Libvirt || na.Bridge == nb.Bridge || netip.MustParsePrefix(na.Subnet).Overlaps(netip.MustParsePrefix(nb.Subnet)) {
		t.Fatalf("two daemons' default networks collide: %+v and %+v", na, nb)
	}
	// Nothing else on the host routes the subnet but its own bridge.
	out, _ := exec.Command("ip", "-4", "route", "show", "match", host(t, na.Subnet, 1)).Output()
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.HasPrefix(l, "default") && !strings.Contains(l, "dev "+na.Bridge) {
			t.Fatalf("subnet %s is also routed by: %s", na.Subnet, l)
		}
	}
	// (libvirt's own network named default may be there: unmanaged.)
	if n, err := off.C.GetNetwork(ctxT(t, time.Minute), "default"); (err == nil && n.Managed) || (err != nil && api.Status(err) != 404) {
		t.Fatalf("--no-default-network: default network: %+v, %v", n, err)
	}

	// b's network is foreign to a: listed as unmanaged, and left alone.
	var list api.NetworkList
	if err := json.Unmarshal([]byte(a.MustCLI("network", "list", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	seen := false
	for _, n := range list.Networks {
		if n.Name == nb.Libvirt {
			seen = true
			if n.Managed {
				t.Fatalf("another daemon's network listed as managed: %+v", n)
			}
		}
	}
	if !seen {
		t.Fatalf("network list of daemon a does not show daemon b's %s: %+v", nb.Libvirt, list)
	}
	if _, errOut, code := a.CLI("network", "delete", nb.Libvirt); code != 1 || !strings.Contains(errOut, "did not create") {
		t.Fatalf("deleting a foreign network: exit %d, %q", code, errOut)
	}
	if !b.network("default").Active {
		t.Fatal("daemon b's network went down")
	}

	// A restart keeps the same network; after a delete, none comes back.
	a.Stop(syscall.SIGTERM)
	a.Start()
	if again := a.network("default"); again.Subnet != na.Subnet || again.Libvirt != na.Libvirt {
		t.Fatalf("after a restart: %+v, was %+v", again, na)
	}
	a.MustCLI("network", "delete", "default")
	if _, err := virsh(t, "net-info", na.Libvirt); err == nil {
		t.Fatalf("libvirt network %s still exists after delete", na.Libvirt)
	}
	a.Stop(syscall.SIGTERM)
	a.Start()
	if n, err := a.C.GetNetwork(ctxT(t, time.Minute), "default"); (err == nil && n.Managed) || (err != nil && api.Status(err) != 404) {
		t.Fatalf("default network came back after delete and restart: %+v, %v", n, err)
	}
}

// Bad network input is refused with a message naming the field, and
// leaves nothing behind.
func TestNetworkBadInput(t *testing.T) {
	d := StartDaemon(t, "--no-default-network")
	ctx := ctxT(t, 2*time.Minute)
	lab := d.createNetwork(api.NetworkSpec{Name: "lab"})

	netCases := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"overlapping subnet", []string{"network", "create", "lab2", "--subnet", lab.Subnet}, "overlaps libvirt network " + lab.Libvirt, 1},
		{"overlapping wider subnet", []string{"network", "create", "lab3", "--subnet", "10.0.0.0/8"}, "subnet: 10.0.0.0/8 overlaps", 1},
		{"duplicate name", []string{"network", "create", "lab"}, "network lab already exists", 1},
		{"bad subnet", []string{"network", "create", "x1", "--subnet", "10.1.2.300/24"}, "not an IPv4 subnet", 1},
		{"host bits", []string{"network", "create", "x1", "--subnet", "10.1.2.1/24"}, "has host bits set", 1},
		{"bad type", []string{"network", "create", "x1", "--type", "mesh"}, `type: expected value to be one of "nat, isolated, bridge, ovs"`, 1},
		{"bad name", []string{"network", "create", "Has Space"}, "may only hold lowercase", 1},
		{"static lease outside", []string{"network", "create", "x1", "--subnet", "10.251.7.0/24", "--lease", "52:54:00:00:00:01=10.9.9.9"}, "dhcp.hosts[0].ip", 1},
		{"static lease bad MAC", []string{"network", "create", "x1", "--subnet", "10.251.7.0/24", "--lease", "zz=10.251.7.9"}, "dhcp.hosts[0].mac", 1},
		{"missing bridge", []string{"network", "create", "x1", "--type", "bridge", "--bridge", "nosuchbr0"}, "no interface nosuchbr0", 1},
		{"not a bridge", []string{"network", "create", "x1", "--type", "bridge", "--bridge", "lo"}, "lo is not a Linux bridge", 1},
		{"bridge name too long", []string{"network", "create", "x1", "--type", "bridge", "--bridge", "abcdefghijklmnopq"}, "longer than the 15 characters", 1},
		{"delete unknown", []string{"network", "delete", "nope"}, "network nope not found", 1},
	}
	for _, c := range netCases {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, code := d.CLI(c.args...)
			if code != c.code || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errOut, c.code, c.want)
			}
		})
	}
	if out, _ := virsh(t, "net-list", "--all", "--name"); strings.Contains(out, d.netPrefix+"-x1") || strings.Contains(out, d.netPrefix+"-lab2") {
		t.Fatalf("a refused network left a libvirt network: %s", out)
	}

	g := Guest(t)
	base := "cpus: 1\nmemory: 128MiB\nboot: {kernel: " + g.Kernel + "}\n"
	specCases := []struct{ name, spec, want string }{
		{"unknown network", "name: n1\n" + base + "nics: [{network: nope}]\n", `nics[0].network: no network named "nope"`},
		{"invalid MAC", "name: n1\n" + base + "nics: [{network: lab, mac: '52:54:00:zz:00:01'}]\n", "nics[0].mac: \"52:54:00:zz:00:01\" is not a MAC address"},
		{"multicast MAC", "name: n1\n" + base + "nics: [{network: lab, mac: '01:00:5e:00:00:01'}]\n", "nics[0].mac: 01:00:5e:00:00:01 is a multicast address"},
		{"duplicate MAC in a spec", "name: n1\n" + base + "nics: [{network: lab, mac: '52:54:00:00:00:01'}, {network: lab, mac: '52:54:00:00:00:01'}]\n", "nics[1].mac: 52:54:00:00:00:01 is also the MAC of nics[0]"},
		{"bad model", "name: n1\n" + base + "nics: [{network: lab, model: ne2k}]\n", `nics[0].model: expected value to be one of`},
		{"NIC without network", "name: n1\n" + base + "nics: [{mac: '52:54:00:00:00:01'}]\n", "nics[0].network: missing"},
	}
	for _, c := range specCases {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, code := d.CLIInput(c.spec, "vm", "create", "-f", "-")
			if code != 1 || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit 1 and %q", code, errOut, c.want)
			}
		})
	}
	if _, err := d.C.GetVM(ctx, "n1"); api.Status(err) != 404 {
		t.Fatalf("a refused spec left vm n1: %v", err)
	}

	// A MAC another VM has is refused, naming that VM; so is deleting a
	// network VMs use, naming them.
	one := netSpec(t, "e2e-nic1-"+uniq(), api.NIC{Network: "lab", MAC: "52:54:00:00:00:42"})
	d.createVM(one, false)
	two := netSpec(t, "e2e-nic2-"+uniq(), api.NIC{Network: "lab", MAC: "52:54:00:00:00:42"})
	if _, err := d.C.CreateVM(ctx, two, client.CreateOptions{}); api.Status(err) != 409 || !strings.Contains(err.Error(), "vm "+one.Name) {
		t.Fatalf("duplicate MAC across VMs: %v", err)
	}
	two.NICs[0].MAC = ""
	d.createVM(two, false)
	_, errOut, code := d.CLI("network", "delete", "lab")
	if code != 1 || !strings.Contains(errOut, "in use by vm") || !strings.Contains(errOut, one.Name) || !strings.Contains(errOut, two.Name) {
		t.Fatalf("delete a network in use: exit %d, %q", code, errOut)
	}
	if !d.network("lab").Active {
		t.Fatal("a refused delete took the network down")
	}
	if _, err := d.C.AttachNIC(ctx, two.Name, api.NIC{Network: "lab", MAC: "52:54:00:00:00:42"}); api.Status(err) != 409 {
		t.Fatalf("hot-plugging another VM's MAC: %v", err)
	}
}

// Guests on one NAT network get their static leases and ping each other;
// a guest on an isolated network cannot reach them, even with a route,
// nor they it; a NIC plugged into a stopped VM and one hot-plugged into a
// running VM show up in the guest with an address.
func TestNetworkNATIsolatedAndHotplug(t *testing.T) {
	d := StartDaemon(t, "--no-default-network")
	ctx := ctxT(t, 5*time.Minute)
	macA, macB, macC, macB2 := "52:54:00:aa:00:11", "52:54:00:aa:00:12", "52:54:00:aa:00:21", "52:54:00:aa:00:22"
	// Static leases make the guests' addresses known beforehand.
	lab := d.createFreeNetwork(func(subnet string) api.NetworkSpec {
		return api.NetworkSpec{Name: "lab", Subnet: subnet, DHCP: &api.DHCP{Hosts: []api.DHCPHost{
			{MAC: macA, IP: host(t, subnet, 11)}, {MAC: macB, IP: host(t, subnet, 12)}}}}
	})
	iso := d.createFreeNetwork(func(subnet string) api.NetworkSpec {
		return api.NetworkSpec{Name: "iso", Type: api.NetworkIsolated, Subnet: subnet, DHCP: &api.DHCP{Hosts: []api.DHCPHost{
			{MAC: macC, IP: host(t, subnet, 21)}, {MAC: macB2, IP: host(t, subnet, 22)}}}}
	})
	ipA, ipB := host(t, lab.Subnet, 11), host(t, lab.Subnet, 12)
	ipC, ipB2 := host(t, iso.Subnet, 21), host(t, iso.Subnet, 22)

	a := netSpec(t, "e2e-neta-"+uniq(), api.NIC{Network: "lab", MAC: macA})
	b := netSpec(t, "e2e-netb-"+uniq(), api.NIC{Network: "lab", MAC: macB})
	c := netSpec(t, "e2e-netc-"+uniq())
	d.createVM(a, true)
	d.createVM(b, true)
	d.createVM(c, false)
	// c is stopped: its NIC goes into its definition, and it boots with it.
	d.waitOp(d.C.AttachNIC(ctx, c.Name, api.NIC{Network: "iso", MAC: macC}))
	if x, _ := virsh(t, "dumpxml", "--inactive", c.Name); !strings.Contains(x, macC) {
		t.Fatalf("stopped VM's definition lacks the NIC:\n%s", x)
	}
	d.waitOp(d.C.StartVM(ctx, c.Name))

	start := time.Now()
	for _, g := range []struct{ vm, ip string }{{a.Name, ipA}, {b.Name, ipB}, {c.Name, ipC}} {
		d.waitIP(g.vm, "eth0", g.ip, 0)
	}
	t.Logf("three guests have their static leases (%s)", time.Since(start).Round(time.Second))
	// The daemon reports the addresses: vm show (lease) and vm list.
	eventually(t, time.Minute, "vm list to show the leases", func() bool {
		vms, err := d.C.ListVMs(ctx)
		if err != nil {
			return false
		}
		got := map[string]string{}
		for _, v := range vms {
			for _, n := range v.NICs {
				for _, ad := range n.Addresses {
					got[v.Name] = ad.IP
				}
			}
		}
		return got[a.Name] == ipA+"/24" && got[b.Name] == ipB+"/24" && got[c.Name] == ipC+"/24"
	})
	if out := d.MustCLI("vm", "show", a.Name); !strings.Contains(out, ipA+"/24 (lease)") || !strings.Contains(out, macA) {
		t.Fatalf("vm show lacks the address:\n%s", out)
	}
	if out := d.MustCLI("vm", "list"); !strings.Contains(out, ipA) || !strings.Contains(out, ipB) {
		t.Fatalf("vm list lacks the addresses:\n%s", out)
	}
	if n := d.network("lab"); len(n.Leases) < 2 || len(n.VMs) != 2 {
		t.Fatalf("network show: leases %+v, vms %v", n.Leases, n.VMs)
	}

	// Same NAT network: a reaches b.
	if out, rc := d.guestExec(a.Name, "ping -c1 -W3 "+ipB, time.Minute); rc != 0 {
		t.Fatalf("a cannot ping b on their NAT network (rc=%d):\n%s", rc, out)
	}
	// Isolated network: c cannot reach a, even with a route through its
	// gateway, and a cannot reach c.
	out, rc := d.guestExec(c.Name, "ip route add "+lab.Subnet+" via "+iso.Gateway+"; ping -c1 -W3 "+ipA, time.Minute)
	if rc == 0 {
		t.Fatalf("c on the isolated network reached a:\n%s", out)
	}
	t.Logf("c -> a (isolated -> nat, routed through the host): rc=%d %s", rc, out)
	out, rc = d.guestExec(a.Name, "ping -c1 -W3 "+ipC, time.Minute)
	if rc == 0 {
		t.Fatalf("a reached c on the isolated network:\n%s", out)
	}
	t.Logf("a -> c (nat -> isolated): rc=%d %s (%s)", rc, out, time.Since(start).Round(time.Second))

	// Hot-plug: b gets a NIC on the isolated network, at once in the guest.
	off := consoleSize(t, d, b.Name)
	op := d.waitOp(d.C.AttachNIC(ctx, b.Name, api.NIC{Network: "iso", MAC: macB2}))
	var vmAfter api.VM
	if err := json.Unmarshal(op.Result, &vmAfter); err != nil || len(vmAfter.NICs) != 2 || vmAfter.Spec == nil || len(vmAfter.Spec.NICs) != 2 {
		t.Fatalf("attach result: %v %+v", err, vmAfter)
	}
	d.waitConsole(b.Name, `^GUEST-DEVICES .*net=eth0,eth1`, off, guestWait)
	d.waitIP(b.Name, "eth1", ipB2, off)
	if x, _ := virsh(t, "dumpxml", "--inactive", b.Name); !strings.Contains(x, macB2) {
		t.Fatal("the hot-plugged NIC is not in the VM's definition")
	}
	// Guests on one isolated network reach each other.
	if out, rc := d.guestExec(b.Name, "ping -c1 -W3 "+ipC, time.Minute); rc != 0 {
		t.Fatalf("b cannot ping c over their isolated network (rc=%d):\n%s", rc, out)
	}
	t.Logf("hot-plugged NIC up, pinged over it (%s)", time.Since(start).Round(time.Second))
	// And it goes again.
	off = consoleSize(t, d, b.Name)
	d.waitOp(d.C.DetachNIC(ctx, b.Name, macB2))
	d.waitConsole(b.Name, `^GUEST-DEVICES .*net=eth0$`, off, guestWait)
	if v, err := d.C.GetVM(ctx, b.Name); err != nil || len(v.NICs) != 1 || len(v.Spec.NICs) != 1 {
		t.Fatalf("after detach: %+v %v", v.NICs, err)
	}
	if x, _ := virsh(t, "dumpxml", "--inactive", b.Name); strings.Contains(x, macB2) {
		t.Fatal("the detached NIC is still in the VM's definition")
	}
}

// peerNamespace makes a network namespace with one end of a veth pair at
// addr; the other end, returned, is for the test to plug into its bridge.
// Both go at cleanup.
func peerNamespace(t *testing.T, d *Daemon, addr string) (ns, hostEnd string) {
	t.Helper()
	id := uniq()
	ns, hostEnd, nsEnd := "gwtns"+id, "gwv"+id, "gwp"+id
	d.track(func(r *sweep.Record) { r.Netns, r.Links = append(r.Netns, ns), append(r.Links, hostEnd) })
	steps := [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "link", "add", hostEnd, "type", "veth", "peer", "name", nsEnd},
		{"ip", "link", "set", nsEnd, "netns", ns},
		{"ip", "-n", ns, "addr", "add", addr, "dev", nsEnd},
		{"ip", "-n", ns, "link", "set", nsEnd, "up"},
		{"ip", "link", "set", hostEnd, "up"},
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", hostEnd).Run()
		_ = exec.Command("ip", "netns", "del", ns).Run()
	})
	for _, st := range steps {
		if out, err := exec.Command(st[0], st[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", strings.Join(st, " "), err, out)
		}
	}
	return ns, hostEnd
}

// bridgedPing boots a guest on a network of typ over bridge, where the
// test's namespace is plugged in too, gives the guest an address by hand
// (there is no DHCP of godwit's on a bridge) and has it ping the
// namespace.
func bridgedPing(t *testing.T, d *Daemon, typ, bridge, plug string) {
	ctx := ctxT(t, 5*time.Minute)
	name := typ + "net"
	n := d.createNetwork(api.NetworkSpec{Name: name, Type: typ, Bridge: bridge})
	if n.Bridge != bridge || n.Type != typ || n.Subnet != "" || !n.Active {
		t.Fatalf("network: %+v", n)
	}
	s := guestSpec(t, fmt.Sprintf("e2e-%s-%s", typ, uniq()))
	s.Disks, s.Memory = nil, 160*api.MiB
	s.NICs = []api.NIC{{Network: name}}
	d.createVM(s, true)
	d.waitConsole(s.Name, `^GUEST-DEVICES .*net=eth0`, 0, 3*time.Minute)
	if out, rc := d.guestExec(s.Name, "ip link set eth0 up; ip addr add "+plug+"0/24 dev eth0", time.Minute); rc != 0 {
		t.Fatalf("address %s: %s", s.Name, out)
	}
	// The first ping may race the bridge learning the ports.
	var out string
	rc := -1
	for try := 0; try < 3 && rc != 0; try++ {
		out, rc = d.guestExec(s.Name, "ping -c2 -W3 "+plug+"1", time.Minute)
	}
	if rc != 0 {
		t.Fatalf("guest on %s network over %s cannot ping the namespace:\n%s", typ, bridge, out)
	}
	v, err := d.C.GetVM(ctx, s.Name)
	if err != nil || len(v.NICs) != 1 || v.NICs[0].Device == "" {
		t.Fatalf("vm: %+v %v", v.NICs, err)
	}
}

// testSubnet is a /24 prefix ("10.253.N.") for addresses that exist only
// inside a test's guests and namespaces.
func testSubnet() string {
	b := []byte(uniq())
	return fmt.Sprintf("10.253.%d.", 1+int(b[0])*int(b[1])%250)
}

// A network bridged to a Linux bridge the test makes (and removes).
func TestNetworkBridged(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip")
	d := StartDaemon(t, "--no-default-network")
	br := "gwt" + uniq()
	d.track(func(r *sweep.Record) { r.Links = append(r.Links, br) })
	if out, err := exec.Command("ip", "link", "add", br, "type", "bridge").CombinedOutput(); err != nil {
		t.Fatalf("ip link add %s: %v %s", br, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", br).Run() })
	if out, err := exec.Command("ip", "link", "set", br, "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s up: %v %s", br, err, out)
	}
	plug := testSubnet()
	_, veth := peerNamespace(t, d, plug+"1/24")
	if out, err := exec.Command("ip", "link", "set", veth, "master", br).CombinedOutput(); err != nil {
		t.Fatalf("plug %s into %s: %v %s", veth, br, err, out)
	}
	bridgedPing(t, d, api.NetworkBridge, br, plug)
}

// A network on an Open vSwitch bridge the test makes (userspace datapath:
// this kernel has no openvswitch module).
func TestNetworkOVS(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ovs-vsctl")
	if out, err := exec.Command("ovs-vsctl", "--timeout=5", "show").CombinedOutput(); err != nil {
		testenv.Skip(t, "Open vSwitch is not running (scripts/host-setup.sh starts it): "+strings.TrimSpace(string(out)))
	}
	d := StartDaemon(t, "--no-default-network")
	br := "gwo" + uniq()
	d.track(func(r *sweep.Record) { r.OVSBridges = append(r.OVSBridges, br) })
	if out, err := exec.Command("ovs-vsctl", "--timeout=10", "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev").CombinedOutput(); err != nil {
		t.Fatalf("ovs-vsctl add-br %s: %v %s", br, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ovs-vsctl", "--timeout=10", "--if-exists", "del-br", br).Run() })
	// A Linux-bridge network cannot use it, and says what to do.
	if _, err := d.C.CreateNetwork(ctxT(t, time.Minute), api.NetworkSpec{Name: "wrong", Type: api.NetworkBridge, Bridge: br}); api.Status(err) != 400 || !strings.Contains(err.Error(), "type: ovs") {
		t.Fatalf("bridge network on an OVS bridge: %v", err)
	}
	plug := testSubnet()
	_, veth := peerNamespace(t, d, plug+"1/24")
	if out, err := exec.Command("ovs-vsctl", "--timeout=10", "add-port", br, veth).CombinedOutput(); err != nil {
		t.Fatalf("plug %s into %s: %v %s", veth, br, err, out)
	}
	bridgedPing(t, d, api.NetworkOVS, br, plug)
	out, err := exec.Command("ovs-vsctl", "list-ports", br).Output()
	if err != nil || len(strings.Fields(string(out))) != 2 {
		t.Fatalf("ovs-vsctl list-ports %s: %v %q", br, err, out)
	}
}
