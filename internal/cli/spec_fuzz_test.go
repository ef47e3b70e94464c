package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
)

// FuzzReadSpec: any file either reads as a spec that survives a JSON
// round trip (what the client sends), or is refused with a message that
// names the input and no Go type; never a panic.
func FuzzReadSpec(f *testing.F) {
	for _, s := range []string{
		"name: web1\ncpus: 2\nmemory: 1GiB\n",
		"name: web1\ncpus: 1\nmemory: 256MiB\nboot: {kernel: /k, initrd: /i, cmdline: console=ttyS0}\ndisks:\n  - {name: root, size: 1GiB}\n",
		"name: web1\nmemory: 1XB\n",
		"name: web1\ncolour: red\n",
		"disks: [{name: a, size: GiB}]\n",
		"{\"name\": \"web1\", \"cpus\": 1}",
		"name: a\n---\nname: b\n",
		"labels: {a: b}\nautostart: yes\n",
		"- 1\n- 2\n",
		"&a [*a]",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		spec, err := readSpec("-", bytes.NewReader(b))
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "stdin: ") {
				t.Fatalf("error %q does not name the input", msg)
			}
			if strings.Contains(msg, "api.") {
				t.Fatalf("error %q shows a Go type", msg)
			}
			return
		}
		j, err := json.Marshal(spec)
		if err != nil {
			t.Fatalf("a spec read from %q does not encode: %v", b, err)
		}
		var back api.VMSpec
		if err := json.Unmarshal(j, &back); err != nil {
			t.Fatalf("spec %s does not decode: %v", j, err)
		}
		j2, _ := json.Marshal(back)
		if !bytes.Equal(j, j2) {
			t.Fatalf("spec changed in a JSON round trip:\n%s\n%s", j, j2)
		}
	})
}
