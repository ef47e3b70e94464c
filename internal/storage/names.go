package storage

import (
	"regexp"
	"strings"

	"github.com/godwit-project/godwit/api"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidateName checks a pool, volume or image name: letters, digits, '.',
// '_' and '-', starting with a letter or digit, at most max characters. It
// becomes part of file names, so nothing that walks paths ('/', '..').
func ValidateName(field, name string, max int) error {
	switch {
	case name == "":
		return api.BadRequest("%s: missing", field)
	case len(name) > max:
		return api.BadRequest("%s: %d characters is too long (at most %d)", field, len(name), max)
	case strings.Contains(name, "/"):
		return api.BadRequest("%s: %q must not contain '/'", field, name)
	case strings.Contains(name, ".."):
		return api.BadRequest("%s: %q must not contain '..'", field, name)
	case !nameRE.MatchString(name):
		return api.BadRequest("%s: %q may only hold letters, digits, '.', '_' and '-', and must start with a letter or digit", field, name)
	}
	return nil
}

// SplitVolume reads "POOL/VOLUME".
func SplitVolume(field, s string) (pool, vol string, err error) {
	pool, vol, ok := strings.Cut(s, "/")
	if !ok || pool == "" || vol == "" {
		return "", "", api.BadRequest("%s: %q is not POOL/VOLUME", field, s)
	}
	if err := ValidateName(field+" (pool)", pool, MaxPoolName); err != nil {
		return "", "", err
	}
	if err := ValidateName(field+" (volume)", vol, MaxVolumeName); err != nil {
		return "", "", err
	}
	return pool, vol, nil
}

// Name limits.
const (
	MaxPoolName   = 63
	MaxVolumeName = 200
)
