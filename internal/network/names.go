package network

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"

	"github.com/godwit-project/godwit/api"
)

// MaxNameLen is the longest network name.
const MaxNameLen = 32

// MaxBridgeLen is Linux's limit on interface names (IFNAMSIZ - 1).
const MaxBridgeLen = 15

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// ValidateName checks a network name: 1-32 lowercase letters, digits, '_'
// and '-', starting with a letter or digit.
func ValidateName(name string) error {
	switch {
	case name == "":
		return api.BadRequest("name: missing (every network needs a name)")
	case len(name) > MaxNameLen:
		return api.BadRequest("name: %d characters is too long (at most %d)", len(name), MaxNameLen)
	case !nameRE.MatchString(name):
		return api.BadRequest("name: %q may only hold lowercase letters, digits, '_' and '-', and must start with a letter or digit", name)
	}
	return nil
}

// LibvirtName is the libvirt network name of godwit network name under
// prefix: libvirt's network names are host-global, so each daemon's are
// prefixed with its own.
func LibvirtName(prefix, name string) string { return prefix + "-" + name }

// BridgeName is the bridge of a nat or isolated network: "gw-" and a hash
// of the libvirt name, 11 characters, within Linux's 15.
func BridgeName(libvirtName string) string {
	sum := sha256.Sum256([]byte(libvirtName))
	return "gw-" + hex.EncodeToString(sum[:4])
}

// validBridge checks the name of a host bridge a user gave.
func validBridge(field, name string) error {
	switch {
	case name == "":
		return api.BadRequest("%s: missing (the name of an existing bridge on this host)", field)
	case len(name) > MaxBridgeLen:
		return api.BadRequest("%s: %q is longer than the %d characters Linux allows an interface name", field, name, MaxBridgeLen)
	case strings.ContainsAny(name, "/ \t\n:") || name == "." || name == "..":
		return api.BadRequest("%s: %q is not a valid interface name", field, name)
	}
	return nil
}
