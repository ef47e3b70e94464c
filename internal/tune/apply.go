package tune

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/godwit-project/godwit/api"
)

// RecordFile is where, in the daemon's state directory, apply keeps the
// values it replaced and the files it wrote, for revert.
const RecordFile = "host-tune.json"

// record is what revert puts back.
type record struct {
	// Values are the files apply wrote and what they held before the
	// first apply (a later apply does not overwrite them), in order.
	Values []saved `json:"values"`
	// Files are the files persist wrote: with their earlier content, or
	// Created when there was none.
	Files []savedFile `json:"files,omitempty"`
}

type saved struct {
	Name string `json:"name"`
	Path string `json:"path"` // under Root, with a leading /
	Old  string `json:"old"`
}

type savedFile struct {
	Path    string `json:"path"`
	Created bool   `json:"created,omitempty"`
	Old     string `json:"old,omitempty"`
}

// Persisted files.
const (
	SysctlFile  = "/etc/sysctl.d/90-godwit-virtual-host.conf"
	ModulesFile = "/etc/modules-load.d/godwit.conf"
)

// plan lists the writes that bring the warnings' settings to the
// profile's values.
func (h Host) plan(rep api.TuneReport) []api.TuneChange {
	var out []api.TuneChange
	for _, it := range rep.Items {
		if it.Status == api.CheckOK || it.Path == "" {
			continue
		}
		if strings.Contains(it.Path, "*") {
			files, _ := filepath.Glob(h.path(it.Path))
			slices.Sort(files)
			for _, f := range files {
				rel := "/" + strings.TrimPrefix(strings.TrimPrefix(f, h.Root), "/")
				cur, _ := h.read(rel)
				if cur != it.Recommended {
					out = append(out, api.TuneChange{Name: it.Name, Path: rel, From: cur, To: it.Recommended})
				}
			}
			continue
		}
		out = append(out, api.TuneChange{Name: it.Name, Path: it.Path, From: it.Current, To: it.Recommended})
	}
	return out
}

// Apply sets the profile's runtime values where the check warns, after
// recording the old ones in stateDir; with persist it also writes them for
// the next boot. A dry run only says what it would do.
func (h Host) Apply(stateDir string, in Inputs, req api.TuneRequest) (api.TuneResult, error) {
	rep, err := h.Check(req.Profile, in)
	if err != nil {
		return api.TuneResult{}, err
	}
	res := api.TuneResult{DryRun: req.DryRun, Changes: h.plan(rep)}
	files := map[string]string{}
	if req.Persist {
		files = h.persistFiles(rep)
		for p := range files {
			res.Files = append(res.Files, p)
		}
		slices.Sort(res.Files)
	}
	if req.DryRun || (len(res.Changes) == 0 && len(files) == 0) {
		if res.Changes == nil {
			res.Changes = []api.TuneChange{}
		}
		return res, nil
	}
	rec, err := readRecord(stateDir)
	if err != nil {
		return res, err
	}
	for _, c := range res.Changes {
		if !slices.ContainsFunc(rec.Values, func(s saved) bool { return s.Path == c.Path }) {
			rec.Values = append(rec.Values, saved{Name: c.Name, Path: c.Path, Old: c.From})
		}
	}
	for _, p := range res.Files {
		if slices.ContainsFunc(rec.Files, func(f savedFile) bool { return f.Path == p }) {
			continue
		}
		old, err := os.ReadFile(h.path(p))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			rec.Files = append(rec.Files, savedFile{Path: p, Created: true})
		case err != nil:
			return res, err
		default:
			rec.Files = append(rec.Files, savedFile{Path: p, Old: string(old)})
		}
	}
	// The record first: a crash from here on still leaves what revert needs.
	if err := writeRecord(stateDir, rec); err != nil {
		return res, err
	}
	for _, c := range res.Changes {
		if err := os.WriteFile(h.path(c.Path), []byte(c.To+"\n"), 0o644); err != nil {
			return res, fmt.Errorf("set %s (%s): %w", c.Name, c.Path, err)
		}
	}
	for _, p := range res.Files {
		if err := os.MkdirAll(filepath.Dir(h.path(p)), 0o755); err != nil {
			return res, err
		}
		if err := os.WriteFile(h.path(p), []byte(files[p]), 0o644); err != nil {
			return res, fmt.Errorf("persist %s: %w", p, err)
		}
	}
	return res, nil
}

// persistFiles are the files that make the profile's settings survive a
// reboot: its sysctls (and the huge pages and NUMA balancing the check
// wants), and vhost_net loaded at boot when it is not loaded.
func (h Host) persistFiles(rep api.TuneReport) map[string]string {
	var b strings.Builder
	b.WriteString("# Written by godwit host tune --persist (profile " + rep.Profile + "); godwit host tune --revert removes it.\n")
	n := 0
	for _, it := range rep.Items {
		if !strings.HasPrefix(it.Path, "/proc/sys/") || it.Recommended == "any" {
			continue
		}
		name := strings.ReplaceAll(strings.TrimPrefix(it.Path, "/proc/sys/"), "/", ".")
		fmt.Fprintf(&b, "%s = %s\n", name, it.Recommended)
		n++
	}
	out := map[string]string{}
	if n > 0 {
		out[SysctlFile] = b.String()
	}
	for _, it := range rep.Items {
		if it.Name == "vhost-net" && it.Status != api.CheckOK {
			out[ModulesFile] = "# Written by godwit host tune --persist: virtio NICs' data path in the kernel.\nvhost_net\n"
		}
	}
	return out
}

// Revert puts back every value apply replaced and removes (or restores)
// the files it persisted, then forgets the record.
func (h Host) Revert(stateDir string) (api.TuneResult, error) {
	rec, err := readRecord(stateDir)
	if err != nil {
		return api.TuneResult{}, err
	}
	res := api.TuneResult{Changes: []api.TuneChange{}}
	if len(rec.Values) == 0 && len(rec.Files) == 0 {
		return res, api.Conflict("host tune: nothing to revert (no record of an apply in %s)", filepath.Join(stateDir, RecordFile))
	}
	for i := len(rec.Values) - 1; i >= 0; i-- {
		v := rec.Values[i]
		cur, _ := h.read(v.Path)
		if err := os.WriteFile(h.path(v.Path), []byte(v.Old+"\n"), 0o644); err != nil {
			return res, fmt.Errorf("revert %s (%s): %w", v.Name, v.Path, err)
		}
		res.Changes = append(res.Changes, api.TuneChange{Name: v.Name, Path: v.Path, From: bracketed(cur), To: v.Old})
	}
	for _, f := range rec.Files {
		var err error
		if f.Created {
			err = os.Remove(h.path(f.Path))
			if errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
		} else {
			err = os.WriteFile(h.path(f.Path), []byte(f.Old), 0o644)
		}
		if err != nil {
			return res, fmt.Errorf("revert %s: %w", f.Path, err)
		}
		res.Files = append(res.Files, f.Path)
	}
	if err := os.Remove(filepath.Join(stateDir, RecordFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, err
	}
	return res, nil
}

func readRecord(stateDir string) (record, error) {
	var rec record
	b, err := os.ReadFile(filepath.Join(stateDir, RecordFile))
	if errors.Is(err, fs.ErrNotExist) {
		return rec, nil
	}
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("%s: %w", filepath.Join(stateDir, RecordFile), err)
	}
	return rec, nil
}

func writeRecord(stateDir string, rec record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(stateDir, RecordFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(stateDir, RecordFile))
}
