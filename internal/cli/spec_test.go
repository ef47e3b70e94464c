package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/godwit-project/godwit/api"
)

func specFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "spec.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadSpec(t *testing.T) {
	yamlSpec := `name: web1
cpus: 2
memory: 1GiB
boot:
  kernel: /srv/vmlinuz
  cmdline: console=ttyS0
disks:
  - {name: root, size: 1073741824}
  - {name: data, image: /srv/data.qcow2, size: 10GiB}
autostart: true
labels: {app: web}
placement: {hostSelector: {rack: a}, antiAffinity: web}
`
	want := api.VMSpec{
		Name: "web1", CPUs: 2, Memory: api.GiB,
		Boot:      &api.Boot{Kernel: "/srv/vmlinuz", Cmdline: "console=ttyS0"},
		Disks:     []api.Disk{{Name: "root", Size: api.GiB}, {Name: "data", Image: "/srv/data.qcow2", Size: 10 * api.GiB}},
		Autostart: true, Labels: map[string]string{"app": "web"},
		Placement: &api.Placement{HostSelector: map[string]string{"rack": "a"}, AntiAffinity: "web"},
	}
	got, err := readSpec(specFile(t, yamlSpec), nil)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("YAML spec = %+v, %v\nwant %+v", got, err, want)
	}
	// ha, and a misspelt placement field, which strict YAML refuses with its line.
	if got, err := readSpec(specFile(t, "name: a\nha: restart\n"), nil); err != nil || got.HA != api.HARestart {
		t.Fatalf("ha: restart = %+v, %v", got, err)
	}
	if _, err := readSpec(specFile(t, "name: a\nplacement:\n  hostSelectr: {rack: a}\n"), nil); err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "hostSelectr") {
		t.Fatalf("misspelt placement field: %v", err)
	}
	// JSON is YAML: the same spec as JSON reads the same, from stdin too.
	b, _ := json.Marshal(want)
	got, err = readSpec("-", bytes.NewReader(b))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("JSON spec %s = %+v, %v", b, got, err)
	}
	got, err = readSpec("-", strings.NewReader(`{"name": "a", "memory": 536870912, "disks": [{"name": "root", "size": "1.5GiB"}]}`))
	if err != nil || got.Memory != 512*api.MiB || got.Disks[0].Size != api.GiB+512*api.MiB {
		t.Fatalf("JSON with a bare byte count = %+v, %v", got, err)
	}
}

// goTypeRE matches what a Go type name looks like in yaml.v3's messages.
var goTypeRE = regexp.MustCompile(`api\.|\bint\b|\bbool\b|map\[|\[\]|in type|!!`)

func TestReadSpecErrors(t *testing.T) {
	cases := []struct {
		what, in string
		words    []string // the error mentions each
	}{
		{"unknown field", "name: web1\ncolour: red\n", []string{"spec.yaml: line 2", "colour", "not a spec field"}},
		{"unknown disk field", "name: web1\ndisks:\n  - name: root\n    sise: 1GiB\n", []string{"line 4", "sise"}},
		{"unknown boot field", "name: web1\nboot: {kernel: /k, append: x}\n", []string{"line 2", "append"}},
		{"malformed YAML", "name: [web1\n", []string{"line 1"}},
		{"bad indentation", "name: web1\n  cpus: 2\n", []string{"line 2"}},
		{"empty file", "", []string{"empty"}},
		{"only blanks", "  \n\n", []string{"empty"}},
		{"two documents", "name: a\n---\nname: b\n", []string{"more than one YAML document"}},
		{"duplicate key", "name: a\nname: b\n", []string{"line 2", `"name" already defined`}},
		{"text for a number", "name: a\ncpus: two\n", []string{"line 2", "`two`"}},
		{"list for a number", "name: a\ncpus: [1]\n", []string{"line 2", "list"}},
		{"text for true/false", "name: a\nautostart: maybe\n", []string{"line 2", "`maybe`"}},
		{"mapping for the disks", "name: a\ndisks: {root: 1GiB}\n", []string{"line 2"}},
		{"list for the labels", "name: a\nlabels: [app]\n", []string{"line 2"}},
		{"text for a disk", "name: a\ndisks: [root]\n", []string{"line 2", "`root`"}},
		{"a list, not a spec", "- name: a\n", []string{"line 1"}},
		{"text, not a spec", "just text\n", []string{"line 1"}},
		{"bad size unit", "name: a\nmemory: 1XB\n", []string{"line 2", "memory", "1XB", "unit"}},
		{"bad disk size", "name: a\ndisks:\n  - {name: d, size: 10 gigs}\n", []string{"line 3", "disks[0].size", "gigs"}},
	}
	for _, c := range cases {
		_, err := readSpec(specFile(t, c.in), nil)
		if err == nil {
			t.Errorf("%s: no error", c.what)
			continue
		}
		msg := err.Error()
		for _, w := range c.words {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q does not mention %q", c.what, msg, w)
			}
		}
		if m := goTypeRE.FindString(msg); m != "" {
			t.Errorf("%s: %q speaks of Go types (%q)", c.what, msg, m)
		}
	}
	if _, err := readSpec(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := readSpec("-", strings.NewReader("")); err == nil || !strings.HasPrefix(err.Error(), "stdin:") {
		t.Errorf("empty stdin: %v", err)
	}
}

func TestPrintValueRoundTrip(t *testing.T) {
	log := false
	v := api.VM{
		Name: "web1", UUID: "0d9f4c3e-0000-4000-8000-000000000001", State: api.VMRunning, Managed: true,
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC), Host: "h1", ConsoleLog: "/var/lib/godwit/console/web1.log",
		Spec: &api.VMSpec{
			Name: "web1", CPUs: 2, Memory: api.GiB, Boot: &api.Boot{Kernel: "/k", Cmdline: "console=ttyS0 root=/dev/vda"},
			Disks:   []api.Disk{{Name: "root", Size: 10 * api.GiB}},
			Console: &api.Console{Log: &log},
			// Text that YAML would read as something else unless quoted.
			Labels: map[string]string{"n": "123", "b": "true", "d": "2024-01-01", "e": "", "null": "null", "c": "x: y",
				"l": "- z", "h": "#x", "m": "multi\nline", "t": "~", "f": "1e3", "x": "0x10", "s": " lead", "q": `"dq"`},
		},
		Disks: []api.VMDisk{{Name: "root", Target: "vda", Pool: "godwit", Volume: "web1-root.qcow2", Path: "/p/web1-root.qcow2", Size: 10*api.GiB + 1}},
	}
	for _, format := range []string{"json", "yaml"} {
		var buf bytes.Buffer
		if err := printValue(&buf, format, v); err != nil {
			t.Fatal(err)
		}
		// Read it back as any reader would, then into the API type.
		var generic any
		if err := yaml.Unmarshal(buf.Bytes(), &generic); err != nil {
			t.Fatalf("%s output does not parse: %v\n%s", format, err, buf.String())
		}
		b, err := json.Marshal(generic)
		if err != nil {
			t.Fatalf("%s output: %v", format, err)
		}
		var back api.VM
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s output does not read back as a VM: %v\n%s", format, err, buf.String())
		}
		if !reflect.DeepEqual(back, v) {
			t.Errorf("%s round trip changed the VM:\n got %+v\nwant %+v\n%s", format, back, v, buf.String())
		}
	}
	var buf bytes.Buffer
	if err := printValue(&buf, "yaml", v); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"name: web1\n", "  memory: 1GiB\n", "  - name: root\n", "consoleLog: /var/lib/godwit/console/web1.log\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("YAML output lacks %q (the API's field names, block style):\n%s", want, out)
		}
	}
	if strings.Contains(out, "{") {
		t.Errorf("YAML output uses flow style:\n%s", out)
	}
}
