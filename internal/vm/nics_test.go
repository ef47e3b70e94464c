package vm

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/hypervisor/fake"
	"github.com/godwit-project/godwit/internal/network"
)

// newNetEnv is newEnv whose service has networks: "lab" (nat, 10.7.0.0/24)
// and "lan" (bridged to br0).
func newNetEnv(t *testing.T) (*env, *network.Service) {
	t.Helper()
	e := newEnv(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	host := &network.FixedHost{Links: map[string]network.LinkKind{"br0": network.LinkBridge}}
	var svc *Service
	nets := network.New(e.f, e.st, host, network.Config{Prefix: "gwt"}, func(ctx context.Context, n string) ([]string, error) {
		return svc.NetworkUsers(ctx, n)
	}, log)
	svc = New(e.f, e.st, e.ops, fakeImages{}, Config{
		Pool: testPool, ConsoleDir: filepath.Join(e.dir, "console"), Owner: testOwner, Host: "testhost",
		VirtType: func(context.Context) (string, error) { return "qemu", nil }, Networks: nets,
	}, log)
	e.svc = svc
	for _, s := range []api.NetworkSpec{{Name: "lab", Subnet: "10.7.0.0/24"}, {Name: "lan", Type: "bridge", Bridge: "br0"}} {
		if _, err := nets.Create(e.ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	return e, nets
}

// interfaces returns the domain's interfaces: live or persistent.
func (e *env) interfaces(name string, live bool) []libvirtxml.DomainInterface {
	e.t.Helper()
	x, err := e.f.XML(e.ctx, name, !live)
	if err != nil {
		e.t.Fatal(err)
	}
	var d libvirtxml.Domain
	if err := d.Unmarshal(x); err != nil {
		e.t.Fatal(err)
	}
	return d.Devices.Interfaces
}

func macs(ifs []libvirtxml.DomainInterface) []string {
	var out []string
	for _, i := range ifs {
		out = append(out, i.MAC.Address)
	}
	return out
}

func TestCreateWithNICs(t *testing.T) {
	e, _ := newNetEnv(t)
	s := e.spec("web1")
	s.NICs = []api.NIC{{Network: "lab"}, {Network: "lan", MAC: "52:54:00:AB:00:01", Model: "e1000"}}
	e.create(s, true)
	v, err := e.svc.Get(e.ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.NICs) != 2 || !strings.HasPrefix(v.NICs[0].MAC, "52:54:00:") || v.NICs[0].Model != "virtio" ||
		v.NICs[1].MAC != "52:54:00:ab:00:01" || v.NICs[1].Model != "e1000" || v.NICs[1].Network != "lan" {
		t.Fatalf("NICs: %+v", v.NICs)
	}
	ifs := e.interfaces("web1", false)
	if len(ifs) != 2 || ifs[0].Source.Network.Network != "gwt-lab" || ifs[0].MAC.Address != v.NICs[0].MAC ||
		ifs[1].Source.Network.Network != "gwt-lan" || ifs[1].Model.Type != "e1000" {
		t.Fatalf("domain interfaces: %+v", ifs)
	}
	// The spec keeps what the user wrote; the MAC godwit chose stays.
	if v.Spec.NICs[0].MAC != "" {
		t.Fatalf("spec: %+v", v.Spec.NICs)
	}
	users, _ := e.svc.NetworkUsers(e.ctx, "lab")
	if !slices.Equal(users, []string{"web1"}) {
		t.Fatalf("users of lab: %v", users)
	}
}

func TestNICRefusals(t *testing.T) {
	e, nets := newNetEnv(t)
	one := e.spec("one")
	one.NICs = []api.NIC{{Network: "lab", MAC: "52:54:00:00:00:01"}}
	e.create(one, false)
	cases := []struct {
		name string
		nics []api.NIC
		code int
		want string
	}{
		{"unknown network", []api.NIC{{Network: "lab"}, {Network: "nope"}}, 400, `nics[1].network: no network named "nope"`},
		{"invalid MAC", []api.NIC{{Network: "lab", MAC: "52:54:00:00:00"}}, 400, "nics[0].mac"},
		{"multicast MAC", []api.NIC{{Network: "lab", MAC: "33:33:00:00:00:01"}}, 400, "multicast"},
		{"duplicate MAC", []api.NIC{{Network: "lab", MAC: "52:54:00:00:00:02"}, {Network: "lan", MAC: "52:54:00:00:00:02"}}, 400, "nics[1].mac: 52:54:00:00:00:02 is also the MAC of nics[0]"},
		{"MAC of another VM", []api.NIC{{Network: "lab", MAC: "52:54:00:00:00:01"}}, 409, "already the MAC of a NIC of vm one"},
		{"bad model", []api.NIC{{Network: "lab", Model: "ne2k"}}, 400, "nics[0].model"},
		{"no network", []api.NIC{{}}, 400, "nics[0].network: missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := e.spec("two")
			s.NICs = c.nics
			_, err := e.svc.Create(e.ctx, s, CreateOptions{})
			wantStatus(t, c.name, err, c.code, c.want)
		})
	}
	if names := e.f.DomainNames(); !slices.Equal(names, []string{"one"}) {
		t.Fatalf("domains: %v", names)
	}
	// The network a VM uses cannot go.
	wantStatus(t, "delete lab", nets.Delete(e.ctx, "lab"), 409, "in use by vm one")
}

func TestAttachAndDetachNICs(t *testing.T) {
	e, nets := newNetEnv(t)
	e.create(e.spec("run"), true)
	e.create(e.spec("off"), false)

	// Running: into the live domain and its definition.
	op := e.succeed(e.svc.AttachNIC(e.ctx, "run", api.NIC{Network: "lab", MAC: "52:54:00:00:00:31"}))
	var v api.VM
	if err := json.Unmarshal(op.Result, &v); err != nil || len(v.NICs) != 1 || v.NICs[0].MAC != "52:54:00:00:00:31" || len(v.Spec.NICs) != 1 {
		t.Fatalf("attach result: %+v %v", v, err)
	}
	if l, p := macs(e.interfaces("run", true)), macs(e.interfaces("run", false)); !slices.Equal(l, []string{"52:54:00:00:00:31"}) || !slices.Equal(p, l) {
		t.Fatalf("live %v, persistent %v", l, p)
	}
	// Stopped: into its definition only, and it boots with it.
	e.succeed(e.svc.AttachNIC(e.ctx, "off", api.NIC{Network: "lan"}))
	if p := macs(e.interfaces("off", false)); len(p) != 1 {
		t.Fatalf("persistent %v", p)
	}
	if !slices.Contains(e.f.Calls(), "AttachDevice off") {
		t.Fatal("no AttachDevice call")
	}
	// Refusals: a MAC in use, the network of a stopped... unknown network.
	_, err := e.svc.AttachNIC(e.ctx, "off", api.NIC{Network: "lab", MAC: "52:54:00:00:00:31"})
	wantStatus(t, "MAC of run", err, 409, "vm run")
	_, err = e.svc.AttachNIC(e.ctx, "off", api.NIC{Network: "nope"})
	wantStatus(t, "unknown network", err, 400, `nic.network: no network named "nope"`)
	_, err = e.svc.AttachNIC(e.ctx, "off", api.NIC{Network: "lab", MAC: "ff:ff:ff:ff:ff:ff"})
	wantStatus(t, "broadcast MAC", err, 400, "nic.mac")
	_, err = e.svc.AttachNIC(e.ctx, "ghost", api.NIC{Network: "lab"})
	wantStatus(t, "unknown vm", err, 404, "ghost")
	// A failed attach leaves the record as it was.
	e.f.FailNext("AttachDevice", nil)
	e.fail(e.svc.AttachNIC(e.ctx, "run", api.NIC{Network: "lab"}))
	if v, _ := e.svc.Get(e.ctx, "run"); len(v.NICs) != 1 {
		t.Fatalf("failed attach changed the NICs: %+v", v.NICs)
	}

	// Redefining (an offline apply) keeps the NICs.
	spec, _ := e.svc.Get(e.ctx, "off")
	s := *spec.Spec
	s.Memory *= 2
	_, res := e.applied(s)
	if len(res.Changes) != 1 || len(macs(e.interfaces("off", false))) != 1 {
		t.Fatalf("apply: %+v; interfaces %v", res.Changes, macs(e.interfaces("off", false)))
	}

	// Detach by network (running: live too) and by MAC.
	e.succeed(e.svc.DetachNIC(e.ctx, "run", NICRef{Network: "lab"}))
	if l, p := e.interfaces("run", true), e.interfaces("run", false); len(l)+len(p) != 0 {
		t.Fatalf("after detach: live %v persistent %v", macs(l), macs(p))
	}
	mac := spec.NICs[0].MAC
	e.succeed(e.svc.DetachNIC(e.ctx, "off", NICRef{MAC: strings.ToUpper(mac)}))
	_, err = e.svc.DetachNIC(e.ctx, "off", NICRef{MAC: mac})
	wantStatus(t, "detach again", err, 404, "no NIC with MAC")
	if err := nets.Delete(e.ctx, "lab"); err != nil {
		t.Fatalf("delete lab once unused: %v", err)
	}
}

func TestApplyChangesNICsOffline(t *testing.T) {
	e, _ := newNetEnv(t)
	s := e.spec("web")
	s.NICs = []api.NIC{{Network: "lab"}}
	e.create(s, true)
	first := macs(e.interfaces("web", false))[0]

	// Same NICs, no MAC given: nothing to change.
	if _, res := e.applied(s); len(res.Changes) != 0 {
		t.Fatalf("changes %v", res.Changes)
	}
	s.NICs = append(s.NICs, api.NIC{Network: "lan"})
	_, err := e.svc.Apply(e.ctx, s, ApplyOptions{})
	wantStatus(t, "add a NIC while running", err, 409, "nics[1]: add a NIC on lan")
	e.succeed(e.svc.Stop(e.ctx, "web", StopOptions{Force: true}))
	_, res := e.applied(s)
	if !slices.Equal(res.Changes, []string{"nics[1]: add a NIC on lan"}) {
		t.Fatalf("changes %v", res.Changes)
	}
	got := macs(e.interfaces("web", false))
	if len(got) != 2 || got[0] != first {
		t.Fatalf("interfaces %v (the first NIC must keep %s)", got, first)
	}
	s.NICs = s.NICs[1:]
	if _, res := e.applied(s); len(res.Changes) != 2 {
		t.Fatalf("changes %v", res.Changes)
	}
	if got := e.interfaces("web", false); len(got) != 1 || got[0].Source.Network.Network != "gwt-lan" {
		t.Fatalf("interfaces %v", macs(got))
	}
}

func TestAddresses(t *testing.T) {
	e, _ := newNetEnv(t)
	a := e.spec("a")
	a.NICs = []api.NIC{{Network: "lab", MAC: "52:54:00:00:00:0a"}, {Network: "lan", MAC: "52:54:00:00:00:1a"}}
	e.create(a, true)
	b := e.spec("b")
	b.NICs = []api.NIC{{Network: "lab", MAC: "52:54:00:00:00:0b"}}
	e.create(b, true)
	e.f.SetLeases("gwt-lab", hypervisor.Lease{MAC: "52:54:00:00:00:0a", IP: "10.7.0.10", Prefix: 24},
		hypervisor.Lease{MAC: "52:54:00:00:00:0b", IP: "10.7.0.11", Prefix: 24})
	// a has qemu-guest-agent: it knows the bridged NIC's address too.
	e.f.SetGuest("a", fake.Guest{Agent: []hypervisor.Interface{
		{Name: "lo", MAC: "00:00:00:00:00:00", Addrs: []string{"127.0.0.1/8"}},
		{Name: "eth0", MAC: "52:54:00:00:00:0a", Addrs: []string{"10.7.0.10/24", "fe80::1/64"}},
		{Name: "eth1", MAC: "52:54:00:00:00:1a", Addrs: []string{"192.168.50.5/24", "2001:db8::5/64"}},
	}})

	v, err := e.svc.Get(e.ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	want0 := []api.Address{{IP: "10.7.0.10/24", Source: "lease"}}
	want1 := []api.Address{{IP: "192.168.50.5/24", Source: "agent", Interface: "eth1"}, {IP: "2001:db8::5/64", Source: "agent", Interface: "eth1"}}
	if !slices.Equal(v.NICs[0].Addresses, want0) || !slices.Equal(v.NICs[1].Addresses, want1) {
		t.Fatalf("addresses: %+v / %+v", v.NICs[0].Addresses, v.NICs[1].Addresses)
	}
	list, err := e.svc.List(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]api.Address{}
	for _, v := range list {
		for _, n := range v.NICs {
			got[n.MAC] = n.Addresses
		}
	}
	if !slices.Equal(got["52:54:00:00:00:0a"], want0) || !slices.Equal(got["52:54:00:00:00:1a"], want1) ||
		len(got["52:54:00:00:00:0b"]) != 1 || got["52:54:00:00:00:0b"][0].IP != "10.7.0.11/24" {
		t.Fatalf("list addresses: %+v", got)
	}
	// A stopped VM has none, and is not asked.
	e.succeed(e.svc.Stop(e.ctx, "b", StopOptions{Force: true}))
	if v, _ := e.svc.Get(e.ctx, "b"); len(v.NICs[0].Addresses) != 0 {
		t.Fatalf("stopped VM addresses: %+v", v.NICs)
	}
}

// An agent that does not answer holds up neither vm list nor vm show for
// long; the leases are still there.
func TestSlowAgentIsBounded(t *testing.T) {
	e, _ := newNetEnv(t)
	var names []string
	for i := range 20 {
		s := e.spec("vm" + string(rune('a'+i)))
		s.Disks = nil
		s.NICs = []api.NIC{{Network: "lab"}}
		e.create(s, true)
		names = append(names, s.Name)
	}
	e.f.SetDefaultGuest(fake.Guest{Agent: []hypervisor.Interface{}, AgentDelay: time.Minute})
	v, _ := e.svc.Get(e.ctx, names[0])
	e.f.SetLeases("gwt-lab", hypervisor.Lease{MAC: v.NICs[0].MAC, IP: "10.7.0.50", Prefix: 24})
	start := time.Now()
	list, err := e.svc.List(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > listAddrTimeout+2*time.Second {
		t.Fatalf("list took %s with hung agents", d)
	}
	if len(list) != 20 || len(list[0].NICs[0].Addresses) != 1 {
		t.Fatalf("list: %d VMs, first %+v", len(list), list[0].NICs)
	}
	start = time.Now()
	if _, err := e.svc.Get(e.ctx, names[1]); err != nil || time.Since(start) > showAddrTimeout+2*time.Second {
		t.Fatalf("show: %v after %s", err, time.Since(start))
	}
}
