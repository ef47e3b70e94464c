package network

import (
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
)

func off() *bool { f := false; return &f }

func TestResolveFillsDefaults(t *testing.T) {
	cases := []struct {
		name                string
		spec                api.NetworkSpec
		gateway, start, end string
		dhcp                bool
	}{
		{"/24", api.NetworkSpec{Name: "a", Type: "nat", Subnet: "10.1.2.0/24"}, "10.1.2.1", "10.1.2.2", "10.1.2.254", true},
		{"/30", api.NetworkSpec{Name: "a", Type: "nat", Subnet: "10.1.2.0/30"}, "10.1.2.1", "10.1.2.2", "10.1.2.2", true},
		{"gateway last", api.NetworkSpec{Name: "a", Type: "isolated", Subnet: "10.1.2.0/24", Gateway: "10.1.2.254"}, "10.1.2.254", "10.1.2.1", "10.1.2.253", true},
		{"given range", api.NetworkSpec{Name: "a", Type: "nat", Subnet: "10.1.2.0/24", DHCP: &api.DHCP{Start: "10.1.2.100", End: "10.1.2.150"}}, "10.1.2.1", "10.1.2.100", "10.1.2.150", true},
		{"no dhcp", api.NetworkSpec{Name: "a", Type: "nat", Subnet: "10.1.2.0/24", DHCP: &api.DHCP{Enabled: off()}}, "10.1.2.1", "", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			Normalize(&c.spec)
			if err := ValidateStatic(c.spec); err != nil {
				t.Fatal(err)
			}
			got, err := resolve(c.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got.Gateway != c.gateway || DHCPEnabled(got) != c.dhcp {
				t.Fatalf("gateway %s dhcp %v, want %s %v", got.Gateway, DHCPEnabled(got), c.gateway, c.dhcp)
			}
			if c.dhcp && (got.DHCP.Start != c.start || got.DHCP.End != c.end) {
				t.Fatalf("range %s-%s, want %s-%s", got.DHCP.Start, got.DHCP.End, c.start, c.end)
			}
		})
	}
}

func TestValidationNamesTheField(t *testing.T) {
	hosts := func(h ...api.DHCPHost) *api.DHCP { return &api.DHCP{Hosts: h} }
	cases := []struct {
		name string
		spec api.NetworkSpec
		want string
	}{
		{"no name", api.NetworkSpec{}, "name: missing"},
		{"upper case name", api.NetworkSpec{Name: "Lab"}, "name: \"Lab\" may only hold"},
		{"long name", api.NetworkSpec{Name: strings.Repeat("a", 33)}, "name: 33 characters"},
		{"bad type", api.NetworkSpec{Name: "a", Type: "mesh"}, `type: "mesh" is not`},
		{"nat with bridge", api.NetworkSpec{Name: "a", Bridge: "br0"}, "bridge: a nat network gets a bridge of its own"},
		{"gateway without subnet", api.NetworkSpec{Name: "a", Gateway: "10.0.0.1"}, "subnet: missing"},
		{"bridge without bridge", api.NetworkSpec{Name: "a", Type: "bridge"}, "bridge: missing"},
		{"bridge with subnet", api.NetworkSpec{Name: "a", Type: "bridge", Bridge: "br0", Subnet: "10.0.0.0/24"}, "subnet: a bridge network has no subnet"},
		{"ovs name too long", api.NetworkSpec{Name: "a", Type: "ovs", Bridge: "abcdefghijklmnop"}, "longer than the 15 characters"},
		{"not a subnet", api.NetworkSpec{Name: "a", Subnet: "10.0.0.0"}, "not an IPv4 subnet"},
		{"IPv6", api.NetworkSpec{Name: "a", Subnet: "fd00::/64"}, "not an IPv4 subnet"},
		{"host bits", api.NetworkSpec{Name: "a", Subnet: "10.0.0.1/24"}, "subnet: 10.0.0.1/24 has host bits set; the subnet is 10.0.0.0/24"},
		{"too big", api.NetworkSpec{Name: "a", Subnet: "10.0.0.0/7"}, "/7 is out of range"},
		{"too small", api.NetworkSpec{Name: "a", Subnet: "10.0.0.0/31"}, "/31 is out of range"},
		{"gateway outside", api.NetworkSpec{Name: "a", Subnet: "10.0.0.0/24", Gateway: "10.0.1.1"}, "gateway: 10.0.1.1 is not a host address"},
		{"gateway is broadcast", api.NetworkSpec{Name: "a", Subnet: "10.0.0.0/24", Gateway: "10.0.0.255"}, "gateway: 10.0.0.255 is not a host address"},
		{"range outside", api.NetworkSpec{Name: "a", Subnet: "10.0.0.0/24", DHCP: &api.DHCP{Start: "10.0.1.2"}}, "dhcp.start"},
		{"range backwards", api.NetworkSpec{Name: "a", Subnet: "10.0.0.0/24", DHCP: &api.DHCP{Start: "10.0.0.9", End: "10.0.0.5"}}, "ends before it starts"},
		{"range holds gateway", api.NetworkSpec{Name: "a", Subnet: "10.0.0.0/24", DHCP: &api.DHCP{Start: "10.0.0.1", End: "10.0.0.5"}}, "holds the gateway 10.0.0.1"},
		{"lease bad MAC", api.NetworkSpec{Name: "a", Subnet: "10.0.0.0/24", DHCP: hosts(api.DHCPHost{MAC: "nope", IP: "10.0.0.5"})}, "dhcp.hosts[0].mac"},
		{"lease multicast MAC", api.NetworkSpec{Name: "a", Subnet: "10.0.0.0/24", DHCP: hosts(api.DHCPHost{MAC: "01:00:5e:00:00:01", IP: "10.0.0.5"})}, "multicast"},
		{"lease duplicate MAC", api.NetworkSpec{Name: "a", Subnet: "10.0.0.0/24", DHCP: hosts(api.DHCPHost{MAC: "52:54:00:00:00:01", IP: "10.0.0.5"}, api.DHCPHost{MAC: "52:54:00:00:00:01", IP: "10.0.0.6"})}, "dhcp.hosts[1].mac: 52:54:00:00:00:01 already has a static lease"},
		{"lease duplicate IP", api.NetworkSpec{Name: "a", Subnet: "10.0.0.0/24", DHCP: hosts(api.DHCPHost{MAC: "52:54:00:00:00:01", IP: "10.0.0.5"}, api.DHCPHost{MAC: "52:54:00:00:00:02", IP: "10.0.0.5"})}, "dhcp.hosts[1].ip: 10.0.0.5 is already leased"},
		{"lease outside", api.NetworkSpec{Name: "a", Subnet: "10.0.0.0/24", DHCP: hosts(api.DHCPHost{MAC: "52:54:00:00:00:01", IP: "10.9.0.5"})}, "dhcp.hosts[0].ip"},
		{"lease on gateway", api.NetworkSpec{Name: "a", Subnet: "10.0.0.0/24", DHCP: hosts(api.DHCPHost{MAC: "52:54:00:00:00:01", IP: "10.0.0.1"})}, "gateway's address"},
		{"lease bad name", api.NetworkSpec{Name: "a", Subnet: "10.0.0.0/24", DHCP: hosts(api.DHCPHost{MAC: "52:54:00:00:00:01", IP: "10.0.0.5", Name: "a b"})}, "dhcp.hosts[0].name"},
		{"leases without dhcp", api.NetworkSpec{Name: "a", Subnet: "10.0.0.0/24", DHCP: &api.DHCP{Enabled: off(), Hosts: []api.DHCPHost{{MAC: "52:54:00:00:00:01", IP: "10.0.0.5"}}}}, "need dhcp.enabled"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			Normalize(&c.spec)
			err := ValidateStatic(c.spec)
			if err == nil && c.spec.Subnet != "" {
				_, err = resolve(c.spec)
			}
			if api.Status(err) != 400 || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want a 400 with %q", err, c.want)
			}
		})
	}
}

func TestMACs(t *testing.T) {
	for in, want := range map[string]string{"52:54:00:AB:cd:01": "52:54:00:ab:cd:01", "52-54-00-ab-cd-01": "52:54:00:ab:cd:01"} {
		if got, err := NormalizeMAC("mac", in); err != nil || got != want {
			t.Errorf("NormalizeMAC(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "52:54:00:ab:cd", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "53:54:00:00:00:01", "52:54:00:ab:cd:01:02:03"} {
		if _, err := NormalizeMAC("mac", bad); api.Status(err) != 400 || !strings.Contains(err.Error(), "mac:") {
			t.Errorf("NormalizeMAC(%q) = %v, want a 400 naming the field", bad, err)
		}
	}
	seen := map[string]bool{}
	for range 100 {
		m := RandomMAC()
		if _, err := NormalizeMAC("mac", m); err != nil || !strings.HasPrefix(m, "52:54:00:") {
			t.Fatalf("RandomMAC() = %q: %v", m, err)
		}
		seen[m] = true
	}
	if len(seen) < 95 {
		t.Fatalf("RandomMAC repeats itself: %d distinct of 100", len(seen))
	}
}

func TestNamesFitLinux(t *testing.T) {
	b := BridgeName(LibvirtName("godwit-0123abcd", strings.Repeat("n", MaxNameLen)))
	if len(b) > MaxBridgeLen || !strings.HasPrefix(b, "gw-") {
		t.Fatalf("bridge %q", b)
	}
	if BridgeName("godwit-a-x") == BridgeName("godwit-b-x") {
		t.Fatal("two daemons' networks of one name get one bridge")
	}
}
