package network

import (
	"crypto/rand"
	"fmt"
	"net"
	"strings"

	"github.com/godwit-project/godwit/api"
)

// NormalizeMAC returns mac in libvirt's form (lowercase, colons), or a 400
// naming field when it is not a usable unicast MAC.
func NormalizeMAC(field, mac string) (string, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return "", api.BadRequest("%s: %q is not a MAC address (six hex bytes, e.g. 52:54:00:12:34:56)", field, mac)
	}
	if hw[0]&1 == 1 {
		return "", api.BadRequest("%s: %s is a multicast address (the first byte is odd); a NIC needs a unicast MAC", field, hw)
	}
	if strings.Trim(hw.String(), "0:") == "" {
		return "", api.BadRequest("%s: %s is all zeros", field, hw)
	}
	return strings.ToLower(hw.String()), nil
}

// RandomMAC returns a random MAC in 52:54:00, QEMU's range.
func RandomMAC() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2])
}
