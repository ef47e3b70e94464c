package domainxml

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

// Each testdata/NAME.json is an Input; NAME.xml is the XML it must give.
func TestGolden(t *testing.T) {
	inputs, _ := filepath.Glob("testdata/*.json")
	if len(inputs) == 0 {
		t.Fatal("no golden inputs in testdata/")
	}
	for _, path := range inputs {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var in Input
			dec := json.NewDecoder(strings.NewReader(string(raw)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			got, err := Marshal(in)
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
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got+"\n" != string(want) {
				t.Errorf("XML differs from %s (go test ./internal/domainxml -update rewrites it):\n%s", golden, got)
			}
			// The output must parse back as a domain with the same name.
			var back libvirtxml.Domain
			if err := back.Unmarshal(got); err != nil || back.Name != in.Spec.Name {
				t.Errorf("round trip: %v, name %q", err, back.Name)
			}
			if owner := OwnerOf(got); owner != in.Owner {
				t.Errorf("OwnerOf = %q, want %q", owner, in.Owner)
			}
		})
	}
}

func TestBadVirtType(t *testing.T) {
	if _, err := Marshal(Input{VirtType: "xen"}); err == nil || !strings.Contains(err.Error(), "xen") {
		t.Fatalf("err = %v", err)
	}
}

func TestOwnerOfForeignDomain(t *testing.T) {
	if got := OwnerOf("<domain type='kvm'><name>x</name></domain>"); got != "" {
		t.Fatalf("OwnerOf = %q", got)
	}
	// libvirt may rename the prefix; the namespace decides.
	x := `<domain><metadata><g:vm xmlns:g="` + MetadataNS + `"><g:owner>abc</g:owner></g:vm></metadata></domain>`
	if got := OwnerOf(x); got != "abc" {
		t.Fatalf("OwnerOf = %q", got)
	}
}
