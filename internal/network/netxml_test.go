package network

import (
	"testing"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/internal/golden"
)

// Each testdata/NAME.json is a resolved Def; NAME.xml is the XML it gives.
func TestGolden(t *testing.T) {
	golden.ForEachJSON(t, 4, func(t *testing.T, d Def, base string) {
		got, err := Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		golden.Compare(t, base+".xml", got+"\n")
		var back libvirtxml.Network
		if err := back.Unmarshal(got); err != nil || back.Name != d.Libvirt {
			t.Errorf("round trip: %v, name %q", err, back.Name)
		}
		typ, subnet, gw := describe(got)
		if typ != d.Spec.Type || subnet != d.Spec.Subnet || gw != d.Spec.Gateway {
			t.Errorf("describe = %s %s %s, want %s %s %s", typ, subnet, gw, d.Spec.Type, d.Spec.Subnet, d.Spec.Gateway)
		}
	})
}

func TestSubnetsOfForeignXML(t *testing.T) {
	x := `<network><name>default</name><forward mode='nat'/><ip address='192.168.122.1' netmask='255.255.255.0'/><ip family='ipv6' address='fd00::1' prefix='64'/></network>`
	subs := subnetsOf(x)
	if len(subs) != 1 || subs[0].String() != "192.168.122.0/24" {
		t.Fatalf("subnetsOf = %v", subs)
	}
}
