package api

import (
	"strings"
	"testing"
)

// FuzzParseSize: any text either parses to a size that prints back to
// itself, or is refused with a message that quotes it; never a panic.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1GiB", "512M", "1.5 GB", "4096", "0", "1e3", "GiB", ".5KiB", "99999999999PiB", "1.0000000001GiB", " 2 tib "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			if !strings.Contains(err.Error(), "size") {
				t.Fatalf("ParseSize(%q): error %q does not say it is about a size", s, err)
			}
			return
		}
		back, err := ParseSize(v.String())
		if err != nil || back != v {
			t.Fatalf("ParseSize(%q) = %d, printed %q, parsed back %d (%v)", s, v, v.String(), back, err)
		}
		var u Size
		if err := u.UnmarshalText([]byte(s)); err != nil || u != v {
			t.Fatalf("UnmarshalText(%q) = %d, %v; ParseSize gave %d", s, u, err, v)
		}
	})
}
