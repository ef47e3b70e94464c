package network

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor/fake"
	"github.com/godwit-project/godwit/internal/store"
	"github.com/godwit-project/godwit/internal/store/bolt"
)

type env struct {
	t     *testing.T
	ctx   context.Context
	f     *fake.Fake
	st    store.Store
	host  *FixedHost
	svc   *Service
	mu    sync.Mutex
	users map[string][]string
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if cfg.Prefix == "" {
		cfg.Prefix = "godwit-test"
	}
	e := &env{t: t, ctx: context.Background(), f: fake.New(), st: st, users: map[string][]string{},
		host: &FixedHost{
			RouteList: []Route{{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Dev: "eth0"}},
			Links:     map[string]LinkKind{"eth0": LinkOther, "br0": LinkBridge, "ovsbr0": LinkOther},
			OVS:       map[string]bool{"ovsbr0": true},
		}}
	users := func(_ context.Context, n string) ([]string, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.users[n], nil
	}
	e.svc = New(e.f, st, e.host, cfg, users, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return e
}

func (e *env) create(spec api.NetworkSpec) api.Network {
	e.t.Helper()
	n, err := e.svc.Create(e.ctx, spec)
	if err != nil {
		e.t.Fatalf("create %s: %v", spec.Name, err)
	}
	return n
}

func wantStatus(t *testing.T, what string, err error, code int, words ...string) {
	t.Helper()
	if api.Status(err) != code {
		t.Fatalf("%s: %v (status %d), want %d", what, err, api.Status(err), code)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("%s: %q does not say %q", what, err, w)
		}
	}
}

func TestCreateNATPicksAFreeSubnet(t *testing.T) {
	e := newEnv(t, Config{})
	// Someone else's network, and a host route over much of 10/8.
	if _, err := e.f.DefineNetwork(e.ctx, `<network><name>default</name><forward mode='nat'/><bridge name='virbr0'/><ip address='192.168.122.1' prefix='24'/></network>`); err != nil {
		t.Fatal(err)
	}
	e.host.RouteList = append(e.host.RouteList, Route{Prefix: netip.MustParsePrefix("10.64.0.0/11"), Dev: "tun0"})
	var subnets []netip.Prefix
	for _, name := range []string{"a", "b", "c", "d"} {
		n := e.create(api.NetworkSpec{Name: name})
		if !n.Managed || !n.Active || !n.Autostart || n.Type != api.NetworkNAT || n.Libvirt != "godwit-test-"+name {
			t.Fatalf("network: %+v", n)
		}
		p := netip.MustParsePrefix(n.Subnet)
		if p.Bits() != 24 || netip.MustParsePrefix("10.64.0.0/11").Overlaps(p) || !netip.MustParsePrefix("10.0.0.0/8").Overlaps(p) {
			t.Fatalf("picked %s", p)
		}
		for _, q := range subnets {
			if q.Overlaps(p) {
				t.Fatalf("picked %s twice", p)
			}
		}
		subnets = append(subnets, p)
		if n.Gateway != p.Addr().Next().String() || n.DHCP == nil || n.DHCP.Start == "" {
			t.Fatalf("defaults: %+v", n)
		}
		info, err := e.f.LookupNetwork(e.ctx, n.Libvirt)
		if err != nil || !strings.Contains(info.XML, `<forward mode="nat">`) || info.Bridge != n.Bridge {
			t.Fatalf("libvirt network: %+v %v", info, err)
		}
	}
}

func TestCreateRefusals(t *testing.T) {
	e := newEnv(t, Config{})
	lab := e.create(api.NetworkSpec{Name: "lab", Subnet: "10.10.0.0/24"})
	if _, err := e.f.DefineNetwork(e.ctx, `<network><name>godwit-test-taken</name><bridge name='x0'/></network>`); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		spec api.NetworkSpec
		code int
		want []string
	}{
		{"same name", api.NetworkSpec{Name: "lab"}, 409, []string{"network lab already exists"}},
		{"overlap", api.NetworkSpec{Name: "x", Subnet: "10.10.0.128/25"}, 409, []string{"subnet: 10.10.0.128/25 overlaps libvirt network " + lab.Libvirt}},
		{"overlap wider", api.NetworkSpec{Name: "x", Subnet: "10.0.0.0/8"}, 409, []string{"overlaps libvirt network"}},
		{"overlap host route", api.NetworkSpec{Name: "x", Subnet: "192.0.2.0/25"}, 409, []string{"the host's route to 192.0.2.0/24 on eth0"}},
		{"libvirt name taken", api.NetworkSpec{Name: "taken"}, 409, []string{"godwit-test-taken already exists"}},
		{"missing bridge", api.NetworkSpec{Name: "x", Type: "bridge", Bridge: "br9"}, 400, []string{"no interface br9"}},
		{"not a bridge", api.NetworkSpec{Name: "x", Type: "bridge", Bridge: "eth0"}, 400, []string{"eth0 is not a Linux bridge"}},
		{"ovs bridge as linux bridge", api.NetworkSpec{Name: "x", Type: "bridge", Bridge: "ovsbr0"}, 400, []string{"use type: ovs"}},
		{"missing ovs bridge", api.NetworkSpec{Name: "x", Type: "ovs", Bridge: "br0"}, 400, []string{"Open vSwitch has no bridge br0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.svc.Create(e.ctx, c.spec)
			wantStatus(t, c.name, err, c.code, c.want...)
		})
	}
	if got := e.f.NetworkNames(); !slices.Equal(got, []string{"godwit-test-lab", "godwit-test-taken"}) {
		t.Fatalf("refusals left networks: %v", got)
	}
}

func TestCreateFailureLeavesNothing(t *testing.T) {
	for _, method := range []string{"DefineNetwork", "StartNetwork", "SetNetworkAutostart"} {
		t.Run(method, func(t *testing.T) {
			e := newEnv(t, Config{})
			e.f.FailNext(method, nil)
			if _, err := e.svc.Create(e.ctx, api.NetworkSpec{Name: "lab"}); err == nil {
				t.Fatal("create succeeded")
			}
			if got := e.f.NetworkNames(); len(got) != 0 {
				t.Fatalf("left libvirt networks %v", got)
			}
			if list, _ := e.svc.List(e.ctx); len(list) != 0 {
				t.Fatalf("left records %+v", list)
			}
			e.create(api.NetworkSpec{Name: "lab"}) // and the name is free
		})
	}
}

func TestBridgeAndOVSNetworks(t *testing.T) {
	e := newEnv(t, Config{})
	br := e.create(api.NetworkSpec{Name: "lan", Type: "bridge", Bridge: "br0"})
	ovs := e.create(api.NetworkSpec{Name: "sw", Type: "ovs", Bridge: "ovsbr0"})
	if br.Bridge != "br0" || br.Subnet != "" || ovs.Bridge != "ovsbr0" || ovs.Type != "ovs" {
		t.Fatalf("%+v %+v", br, ovs)
	}
	info, _ := e.f.LookupNetwork(e.ctx, ovs.Libvirt)
	if !strings.Contains(info.XML, `<virtualport type="openvswitch">`) {
		t.Fatalf("OVS XML: %s", info.XML)
	}
	e.host.OVSErr = errNoOVS
	_, err := e.svc.Create(e.ctx, api.NetworkSpec{Name: "sw2", Type: "ovs", Bridge: "ovsbr0"})
	wantStatus(t, "no OVS", err, 400, "Open vSwitch is not installed")
}

var errNoOVS = &api.StatusError{Message: "Open vSwitch is not installed here"}

func TestDeleteRefusesNetworksInUse(t *testing.T) {
	e := newEnv(t, Config{})
	lab := e.create(api.NetworkSpec{Name: "lab"})
	e.users["lab"] = []string{"web1", "web2"}
	err := e.svc.Delete(e.ctx, "lab")
	wantStatus(t, "in use", err, 409, "in use by vm web1, web2")
	e.users["lab"] = nil
	// A domain godwit does not know, plugged in.
	if _, err := e.f.Define(e.ctx, `<domain><name>stranger</name><devices><interface type='network'><mac address='52:54:00:00:00:09'/><source network='`+lab.Libvirt+`'/></interface></devices></domain>`); err != nil {
		t.Fatal(err)
	}
	if err := e.f.Start(e.ctx, "stranger"); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "foreign port", e.svc.Delete(e.ctx, "lab"), 409, "libvirt domain stranger")
	if err := e.f.Destroy(e.ctx, "stranger"); err != nil {
		t.Fatal(err)
	}
	// While a VM action holds it, it cannot go either.
	_, release, err := e.svc.Pin(e.ctx, []string{"lab"}, func(int) string { return "nics[0].network" })
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "pinned", e.svc.Delete(e.ctx, "lab"), 409, "being attached")
	release()
	if err := e.svc.Delete(e.ctx, "lab"); err != nil {
		t.Fatal(err)
	}
	if len(e.f.NetworkNames()) != 0 {
		t.Fatalf("left %v", e.f.NetworkNames())
	}
	_, _, err = e.svc.Pin(e.ctx, []string{"lab"}, func(int) string { return "nics[3].network" })
	wantStatus(t, "unknown", err, 400, `nics[3].network: no network named "lab"`)
	wantStatus(t, "delete again", e.svc.Delete(e.ctx, "lab"), 404, "network lab not found")
}

func TestForeignNetworksAreListedAndLeftAlone(t *testing.T) {
	e := newEnv(t, Config{})
	if _, err := e.f.DefineNetwork(e.ctx, `<network><name>default</name><forward mode='nat'/><bridge name='virbr0'/><ip address='192.168.122.1' netmask='255.255.255.0'/></network>`); err != nil {
		t.Fatal(err)
	}
	e.create(api.NetworkSpec{Name: "default"}) // godwit's default is not libvirt's
	list, err := e.svc.List(e.ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
	if !list[0].Managed || list[0].Libvirt != "godwit-test-default" || list[1].Managed || list[1].Libvirt != "default" || list[1].Subnet != "192.168.122.0/24" {
		t.Fatalf("list: %+v", list)
	}
	n, err := e.svc.Get(e.ctx, "godwit-test-default") // by its libvirt name
	if err != nil || !n.Managed || n.Name != "default" {
		t.Fatalf("get by libvirt name: %+v %v", n, err)
	}
	if err := e.svc.Delete(e.ctx, "default"); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "delete foreign", e.svc.Delete(e.ctx, "default"), 409, "did not create")
	if _, err := e.f.LookupNetwork(e.ctx, "default"); err != nil {
		t.Fatal("libvirt's default network is gone")
	}
}

func TestEnsureUp(t *testing.T) {
	e := newEnv(t, Config{Default: true})
	if err := e.svc.EnsureUp(e.ctx); err != nil {
		t.Fatal(err)
	}
	def, err := e.svc.Get(e.ctx, DefaultName)
	if err != nil || def.Type != api.NetworkNAT || !def.Active {
		t.Fatalf("default: %+v %v", def, err)
	}
	// libvirt loses it, or stops it: brought back, same subnet.
	if err := e.f.StopNetwork(e.ctx, def.Libvirt); err != nil {
		t.Fatal(err)
	}
	if err := e.f.UndefineNetwork(e.ctx, def.Libvirt); err != nil {
		t.Fatal(err)
	}
	e.svc.Reset()
	if err := e.svc.EnsureUp(e.ctx); err != nil {
		t.Fatal(err)
	}
	again, _ := e.svc.Get(e.ctx, DefaultName)
	if !again.Active || again.Subnet != def.Subnet {
		t.Fatalf("after libvirt lost it: %+v", again)
	}
	// Deleted by the user: not made again.
	if err := e.svc.Delete(e.ctx, DefaultName); err != nil {
		t.Fatal(err)
	}
	e.svc.Reset()
	if err := e.svc.EnsureUp(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Get(e.ctx, DefaultName); api.Status(err) != 404 {
		t.Fatalf("default came back: %v", err)
	}
}

func TestEnsureUpDefaultOffAndFixedSubnet(t *testing.T) {
	e := newEnv(t, Config{})
	if err := e.svc.EnsureUp(e.ctx); err != nil || len(e.f.NetworkNames()) != 0 {
		t.Fatalf("default off: %v %v", err, e.f.NetworkNames())
	}
	e2 := newEnv(t, Config{Default: true, DefaultSubnet: "10.99.0.0/24"})
	if err := e2.svc.EnsureUp(e2.ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := e2.svc.Get(e2.ctx, DefaultName); n.Subnet != "10.99.0.0/24" {
		t.Fatalf("default subnet %s", n.Subnet)
	}
}

func TestEnsureUpRetriesLater(t *testing.T) {
	e := newEnv(t, Config{Default: true})
	e.f.FailNext("DefineNetwork", nil)
	if err := e.svc.EnsureUp(e.ctx); err == nil {
		t.Fatal("EnsureUp succeeded")
	}
	calls := len(e.f.Calls())
	if err := e.svc.EnsureUp(e.ctx); err == nil || len(e.f.Calls()) != calls {
		t.Fatalf("a second EnsureUp within 30s went to libvirt (%v)", err)
	}
	e.svc.clock = func() time.Time { return time.Now().Add(time.Minute) }
	if err := e.svc.EnsureUp(e.ctx); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

func TestEnsureUpRollsBackInterruptedCreate(t *testing.T) {
	e := newEnv(t, Config{})
	rec := record{Name: "half", Libvirt: "godwit-test-half", Bridge: "gw-half", Status: statusCreating,
		Spec: api.NetworkSpec{Name: "half", Type: "nat", Subnet: "10.5.5.0/24", Gateway: "10.5.5.1"}}
	if err := e.svc.putRecord(e.ctx, rec); err != nil {
		t.Fatal(err)
	}
	doc, _ := Marshal(rec.def())
	if _, err := e.f.DefineNetwork(e.ctx, doc); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.EnsureUp(e.ctx); err != nil {
		t.Fatal(err)
	}
	if len(e.f.NetworkNames()) != 0 {
		t.Fatalf("left %v", e.f.NetworkNames())
	}
	if _, err := e.svc.Get(e.ctx, "half"); api.Status(err) != 404 {
		t.Fatalf("record left: %v", err)
	}
}

// racingHost is a host where, the first time godwit looks at the routes,
// another daemon takes a subnet.
type racingHost struct {
	*FixedHost
	once  sync.Once
	other func()
}

func (h *racingHost) Routes() ([]Route, error) {
	routes, err := h.FixedHost.Routes()
	h.once.Do(h.other)
	return routes, err
}

// Two daemons racing for one subnet: the loser's start fails on the
// network the winner started meanwhile, and it picks another subnet.
func TestCreateRetriesWhenTheSubnetIsTakenMeanwhile(t *testing.T) {
	e := newEnv(t, Config{})
	taken, free := netip.MustParsePrefix("10.100.1.0/24"), netip.MustParsePrefix("10.100.2.0/24")
	e.svc.host = &racingHost{FixedHost: e.host, other: func() {
		if _, err := e.f.DefineNetwork(e.ctx, `<network><name>godwit-other-default</name><bridge name='gw-other'/><ip address='10.100.1.1' prefix='24'/></network>`); err != nil {
			t.Error(err)
		}
		if err := e.f.StartNetwork(e.ctx, "godwit-other-default"); err != nil {
			t.Error(err)
		}
	}}
	picks := []netip.Prefix{taken, taken, free}
	e.svc.pick = func(list []used) (netip.Prefix, error) {
		p := picks[0]
		picks = picks[1:]
		if _, busy := overlap(p, list); busy {
			return e.svc.pick(list)
		}
		return p, nil
	}
	n, err := e.svc.Create(e.ctx, api.NetworkSpec{Name: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Subnet != free.String() || !n.Active {
		t.Fatalf("network %+v, want it on %s", n, free)
	}
}

// Without dnsmasq, NAT and isolated networks are refused up front, naming
// the program and its package; bridged ones still work. The default
// network's bring-up says the same, and logs it once, not every retry.
func TestNoDnsmasq(t *testing.T) {
	var logs strings.Builder
	e := newEnv(t, Config{Default: true})
	e.svc.log = slog.New(slog.NewTextHandler(&logs, nil))
	e.host.Missing = map[string]error{"dnsmasq": errors.New("NAT and isolated networks (DHCP and DNS): dnsmasq is not installed (Debian package dnsmasq-base)")}
	for _, typ := range []string{api.NetworkNAT, api.NetworkIsolated} {
		_, err := e.svc.Create(e.ctx, api.NetworkSpec{Name: "lab", Type: typ})
		wantStatus(t, typ+" without dnsmasq", err, 409, "network lab (type "+typ+")", "dnsmasq is not installed", "dnsmasq-base")
	}
	if got := e.f.NetworkNames(); len(got) != 0 {
		t.Fatalf("refusals left libvirt networks %v", got)
	}
	e.create(api.NetworkSpec{Name: "lan", Type: "bridge", Bridge: "br0"})
	now := time.Now()
	for i := 0; i < 3; i++ {
		e.svc.clock = func() time.Time { return now.Add(time.Duration(i) * time.Minute) }
		if err := e.svc.EnsureUp(e.ctx); err == nil || !strings.Contains(err.Error(), "dnsmasq-base") {
			t.Fatalf("EnsureUp without dnsmasq: %v", err)
		}
	}
	if n := strings.Count(logs.String(), "dnsmasq-base"); n != 1 {
		t.Errorf("three failed bring-ups logged dnsmasq %d times, want once:\n%s", n, logs.String())
	}
	delete(e.host.Missing, "dnsmasq")
	e.svc.clock = func() time.Time { return now.Add(time.Hour) }
	if err := e.svc.EnsureUp(e.ctx); err != nil {
		t.Fatalf("EnsureUp once dnsmasq is there: %v", err)
	}
}
