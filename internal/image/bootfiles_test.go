package image

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

func TestBootFiles(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	k1 := filepath.Join(src, "vmlinuz")
	k2 := filepath.Join(src, "other", "vmlinuz")
	if err := os.MkdirAll(filepath.Dir(k2), 0o700); err != nil {
		t.Fatal(err)
	}
	for p, body := range map[string]string{k1: "kernel one", k2: "kernel two"} {
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, err := NewBootFiles(filepath.Join(t.TempDir(), "boot"))
	if err != nil {
		t.Fatal(err)
	}
	me := &hypervisor.DACLabel{UID: os.Getuid(), GID: os.Getgid()}
	c1, err := b.Import(ctx, k1, me)
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.Import(ctx, k1, me)
	if err != nil || again != c1 {
		t.Fatalf("the same content twice: %q then %q (%v)", c1, again, err)
	}
	c2, err := b.Import(ctx, k2, me)
	if err != nil || c2 == c1 {
		t.Fatalf("other content: %q (%v), first %q", c2, err, c1)
	}
	if !b.Owns(c1) || b.Owns(k1) || !strings.HasSuffix(c1, "-vmlinuz") {
		t.Errorf("copy %q of %q", c1, k1)
	}
	got, _ := os.ReadFile(c2)
	st, _ := os.Stat(c2)
	if string(got) != "kernel two" || st.Mode().Perm() != 0o644 {
		t.Errorf("copy holds %q, mode %v; want the file's bytes, 0644", got, st.Mode().Perm())
	}
	if n, _ := filepath.Glob(filepath.Join(b.Dir(), ".import-*")); len(n) != 0 {
		t.Errorf("import leftovers: %v", n)
	}
	// Fresh copies stay, whatever keep says; old unused ones go.
	if n, err := b.Prune(map[string]bool{}); err != nil || n != 0 {
		t.Errorf("prune of fresh copies removed %d (%v)", n, err)
	}
	old := time.Now().Add(-time.Hour)
	for _, p := range []string{c1, c2} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := b.Prune(map[string]bool{c1: true}); err != nil || n != 1 {
		t.Errorf("prune removed %d (%v), want 1", n, err)
	}
	if _, err := os.Stat(c1); err != nil {
		t.Errorf("a copy in use went: %v", err)
	}
	if _, err := os.Stat(c2); err == nil {
		t.Errorf("an unused copy stayed")
	}
	if _, err := b.Import(ctx, filepath.Join(src, "nope"), me); err == nil {
		t.Errorf("import of a missing file")
	}
}
