package domainxml

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/golden"
)

// Each testdata/derive/NAME.xml is a domain godwit did not define;
// NAME.json is what Derive reads from it.
func TestDeriveGolden(t *testing.T) {
	inputs, _ := filepath.Glob("testdata/derive/*.xml")
	if len(inputs) < 2 {
		t.Fatalf("derive cases: %v", inputs)
	}
	for _, in := range inputs {
		base := strings.TrimSuffix(in, ".xml")
		t.Run(filepath.Base(base), func(t *testing.T) {
			raw, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Derive(string(raw))
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(got); err != nil {
				t.Fatal(err)
			}
			golden.Compare(t, base+".json", b.String())
		})
	}
}

// What godwit defines, Derive reads back whole: the spec's parts, and
// nothing kept but the cloud-init seed (its data is in the ISO, not in the
// domain).
func TestDeriveWhatGodwitDefines(t *testing.T) {
	golden.ForEachJSON(t, 1, func(t *testing.T, in Input, base string) {
		x, err := Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Derive(x)
		if err != nil {
			t.Fatal(err)
		}
		kept := got.Kept
		if in.Seed != "" && len(kept) == 1 && strings.Contains(kept[0], `device="cdrom"`) && strings.Contains(kept[0], in.Seed) {
			kept = nil
		}
		if len(kept) != 0 {
			t.Errorf("kept %q", kept)
		}
		if got.Name != in.Spec.Name || got.CPUs != in.Spec.CPUs || got.Memory != in.Spec.Memory || len(got.Disks) != len(in.Disks) || len(got.NICs) != len(in.NICs) {
			t.Errorf("derived %+v from %+v", got, in.Spec)
		}
		wantBoot := in.Spec.Boot
		if wantBoot != nil && wantBoot.Firmware == "bios" {
			wantBoot = nil
		}
		if !reflect.DeepEqual(got.Boot, wantBoot) {
			t.Errorf("boot %+v, want %+v", got.Boot, wantBoot)
		}
		for i, d := range in.Disks {
			if g := got.Disks[i]; g.Path != d.Path || g.Target != d.Target || g.Name != d.Name {
				t.Errorf("disk %d: %+v, want %+v", i, g, d)
			}
		}
		for i, n := range in.NICs {
			if g := got.NICs[i]; g.MAC != n.MAC || g.Network != n.Network {
				t.Errorf("nic %d: %+v, want %+v", i, g, n)
			}
		}
		if got.ConsoleLog != in.ConsoleLog {
			t.Errorf("console log %q, want %q", got.ConsoleLog, in.ConsoleLog)
		}
	})
}

func TestDeriveRefuses(t *testing.T) {
	for _, x := range []string{"not xml", "<domain><memory>1</memory></domain>", "<domain><name>x</name></domain>",
		"<domain><name>x</name><memory unit='parsecs'>1</memory></domain>"} {
		if _, err := Derive(x); err == nil {
			t.Errorf("Derive(%q) = nil error", x)
		}
	}
	d, err := Derive("<domain><name>x</name><memory unit='GiB'>2</memory></domain>")
	if err != nil || d.Memory != 2*api.GiB || d.CPUs != 1 || d.Kept != nil {
		t.Errorf("minimal domain: %+v, %v", d, err)
	}
}
