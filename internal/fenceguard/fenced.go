package fenceguard

import (
	"encoding/json"
	"os"
	"slices"
)

// The fenced file (STATE/cluster/fenced.json) lists the HA VMs this host
// fenced and has not settled yet: the daemon writes it when it fences,
// the guard when it fires, and the daemon settles it once the host holds
// a lease again (takes back or drops each).

// ReadFenced reads the fenced file (none: no VMs).
func ReadFenced(path string) []string {
	var out []string
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &out)
	}
	return out
}

// WriteFenced replaces the fenced file with names (sorted, each once).
func WriteFenced(path string, names []string) error {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	b, _ := json.Marshal(names)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// NoteFenced adds names to the fenced file.
func NoteFenced(path string, names []string) error {
	return WriteFenced(path, append(ReadFenced(path), names...))
}
