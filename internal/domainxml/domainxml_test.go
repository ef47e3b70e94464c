package domainxml

import (
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/internal/golden"
)

// Each testdata/NAME.json is an Input; NAME.xml is the XML it must give.
func TestGolden(t *testing.T) {
	golden.ForEachJSON(t, 1, func(t *testing.T, in Input, base string) {
		got, err := Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		golden.Compare(t, base+".xml", got+"\n")
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
