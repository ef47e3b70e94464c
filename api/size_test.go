package api

import (
	"encoding/json"
	"testing"
)

func TestParseSize(t *testing.T) {
	good := map[string]Size{
		"1GiB": GiB, "1G": GiB, "1g": GiB, "512MiB": 512 * MiB, "512M": 512 * MiB,
		"1.5GiB": GiB + 512*MiB, "4096": 4096, "4096B": 4096, " 2 TiB ": 2 * TiB,
		"1GB": 1000000000, "1kB": 1000, "1KiB": 1024, "0": 0,
	}
	for in, want := range good {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := []string{"", "GiB", "1 GiBs", "1XB", "-1GiB", "1..2G", "0.3B", "99999999999PiB", "ten"}
	for _, in := range bad {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestSizeRoundTrip(t *testing.T) {
	for _, s := range []Size{0, 1, 1023, KiB, 1536 * KiB, MiB, 3 * GiB, GiB + 1, 5 * TiB} {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back Size
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Errorf("%d -> %s -> %d (%v)", s, b, back, err)
		}
	}
	if got := (GiB + 512*MiB).Human(); got != "1.5GiB" {
		t.Errorf("Human = %q", got)
	}
}
