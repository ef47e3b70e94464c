package api

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is a number of bytes. In specs it is written with a unit, e.g.
// "512MiB", "10GiB", "1.5GB"; a bare number means bytes.
//
// Binary units: KiB MiB GiB TiB PiB (and K M G T P, as qemu-img reads them).
// Decimal units: kB KB MB GB TB PB.
type Size uint64

// Common sizes.
const (
	KiB Size = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
	PiB
)

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tib": 1 << 40,
	"p": 1 << 50, "pib": 1 << 50,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15,
}

// ParseSize reads a size such as "1GiB", "512M", "1.5 GB" or "4096".
func ParseSize(s string) (Size, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty size")
	}
	i := 0
	for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
		i++
	}
	num, unit := in[:i], strings.ToLower(strings.TrimSpace(in[i:]))
	if num == "" {
		return 0, fmt.Errorf("size %q does not start with a number", s)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("size %q has an unknown unit %q (use B, KiB, MiB, GiB, TiB, or kB, MB, GB, TB)", s, strings.TrimSpace(in[i:]))
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %q is not a number", s, num)
	}
	bytes := v * mult
	if bytes >= math.MaxUint64/2 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	if bytes != math.Trunc(bytes) {
		return 0, fmt.Errorf("size %q is not a whole number of bytes", s)
	}
	return Size(bytes), nil
}

// String prints the size in the largest binary unit that divides it exactly,
// so that it parses back to the same value.
func (s Size) String() string {
	units := []struct {
		name string
		size Size
	}{{"PiB", PiB}, {"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}}
	for _, u := range units {
		if s >= u.size && s%u.size == 0 {
			return strconv.FormatUint(uint64(s/u.size), 10) + u.name
		}
	}
	return strconv.FormatUint(uint64(s), 10) + "B"
}

// Human prints the size rounded to one decimal for people, e.g. "1.5GiB".
func (s Size) Human() string {
	f := float64(s)
	for _, u := range []string{"B", "KiB", "MiB", "GiB", "TiB"} {
		if f < 1024 || u == "TiB" {
			if u == "B" {
				return fmt.Sprintf("%dB", uint64(s))
			}
			return strings.TrimSuffix(fmt.Sprintf("%.1f", f), ".0") + u
		}
		f /= 1024
	}
	return s.String()
}

// MarshalText writes the exact form, e.g. "1GiB".
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads any form ParseSize accepts.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
