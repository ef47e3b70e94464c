package network

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Each testdata/NAME.json is a resolved Def; NAME.xml is the XML it gives.
func TestGolden(t *testing.T) {
	inputs, _ := filepath.Glob("testdata/*.json")
	if len(inputs) < 4 {
		t.Fatalf("golden inputs in testdata/: %v", inputs)
	}
	for _, path := range inputs {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var d Def
			dec := json.NewDecoder(strings.NewReader(string(raw)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&d); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			got, err := Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(path, ".json") + ".xml"
			if *update {
				if err := os.WriteFile(golden, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if got+"\n" != string(want) {
				t.Errorf("XML differs from %s (go test ./internal/network -update rewrites it):\n%s", golden, got)
			}
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
}

func TestSubnetsOfForeignXML(t *testing.T) {
	x := `<network><name>default</name><forward mode='nat'/><ip address='192.168.122.1' netmask='255.255.255.0'/><ip family='ipv6' address='fd00::1' prefix='64'/></network>`
	subs := subnetsOf(x)
	if len(subs) != 1 || subs[0].String() != "192.168.122.0/24" {
		t.Fatalf("subnetsOf = %v", subs)
	}
}
