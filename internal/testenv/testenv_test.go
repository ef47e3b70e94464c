package testenv

import (
	"fmt"
	"testing"
)

// fakeTB records what a helper asked of its test instead of ending it.
type fakeTB struct {
	testing.TB
	failed, skipped string
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Fatalf(format string, a ...any) { f.failed = fmt.Sprintf(format, a...) }
func (f *fakeTB) Skip(a ...any)                  { f.skipped = fmt.Sprint(a...) }

func TestSkipFailsInCIButUnsupportedStaysASkip(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("CI", ci)
			f := &fakeTB{}
			Skip(f, "libvirtd is not running")
			if ci == "true" && f.failed == "" {
				t.Errorf("Skip under CI=true did not fail the test")
			}
			if ci == "" && (f.failed != "" || f.skipped != "libvirtd is not running") {
				t.Errorf("Skip off CI: failed %q, skipped %q", f.failed, f.skipped)
			}
			f = &fakeTB{}
			SkipUnsupported(f, "no device-mapper")
			if f.failed != "" || f.skipped != "unsupported by this machine's kernel: no device-mapper" {
				t.Errorf("SkipUnsupported: failed %q, skipped %q", f.failed, f.skipped)
			}
		})
	}
}
