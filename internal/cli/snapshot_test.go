package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
)

func TestSnapshotTree(t *testing.T) {
	var b bytes.Buffer
	err := snapshotTree(&b, []api.Snapshot{
		{Name: "a", Kind: "internal", Memory: true},
		{Name: "b", Parent: "a", Kind: "external"},
		{Name: "c", Parent: "b", Kind: "external", Current: true},
		{Name: "d", Parent: "a", Kind: "internal"},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{"NAME", "a ", "├─ b", "│  └─ c", "└─ d"}
	if len(lines) != len(want) {
		t.Fatalf("tree:\n%s", b.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Fatalf("line %d = %q, want it to start with %q\n%s", i, lines[i], w, b.String())
		}
	}
	if !strings.Contains(lines[3], "*") {
		t.Fatalf("current snapshot not marked: %q", lines[3])
	}
}
