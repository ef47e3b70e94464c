package snapshot

import "testing"

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"s1", "before-upgrade", "2026.11.29_a"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "a/b", "a..b", "a b", string(make([]byte, 70))} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if got := overlayPath("/p/web1-root.qcow2", "s1"); got != "/p/web1-root.s1.qcow2" {
		t.Fatalf("overlay path %s", got)
	}
}
