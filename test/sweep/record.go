// Package sweep removes what test runs that never cleaned up left on this
// machine: a run killed by `go test -timeout`, a SIGKILL or a crash leaves
// godwit daemons, private libvirtds, QEMUs, network namespaces, libvirt
// domains, networks and pools behind.
//
// Each directory a run makes (the e2e harness's /var/tmp/gw-e2e-*, the
// test bed's /var/tmp/gwtb-*) holds a Record (sweep.json) of what the run
// started there and which process ran it. Sweep looks only at directories
// whose recording process is gone, and removes only what the record names:
// a process only by its recorded PID while its command line and start time
// still match, never by a name pattern. A run still in progress, or a
// directory without a record, is left alone.
//
// It must not know the product: only PIDs, names and paths it was told.
package sweep

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// File is the record's name in each directory a run makes.
const File = "sweep.json"

// Kinds of record.
const (
	// KindE2E is a test daemon of test/e2e on the system libvirtd.
	KindE2E = "e2e"
	// KindTestbed is a bed of simulated hosts (test/testbed).
	KindTestbed = "testbed"
)

// DefaultGlobs are where runs make their directories.
var DefaultGlobs = []string{E2EGlob, "/var/tmp/gwtb-*"}

// E2EGlob matches the directories of e2e runs (test/e2e's harness), whose
// daemons use the system libvirtd.
const E2EGlob = "/var/tmp/gw-e2e-*"

// Record is what a run started below (or for) its directory.
type Record struct {
	Kind string `json:"kind"`
	// ID is the run's own name for itself (a test bed's id), if any.
	ID  string `json:"id,omitempty"`
	Dir string `json:"dir"`
	// Owner is the process that made the directory (the test binary, the
	// demo, the benchmark): while it runs, nothing here is touched.
	Owner Proc `json:"owner"`
	// Procs are the processes the run started, in order.
	Procs []Proc `json:"procs,omitempty"`
	// PIDFiles name processes that the run's own libvirtds started.
	PIDFiles []PIDFile `json:"pid_files,omitempty"`
	// On the system libvirtd (e2e): the daemon's pool, and the prefix of
	// its networks' names. Domains and pools with files under Dir go too.
	Pool      string `json:"pool,omitempty"`
	NetPrefix string `json:"net_prefix,omitempty"`
	// Network namespaces, links of the root namespace and Open vSwitch
	// bridges the run made.
	Netns      []string `json:"netns,omitempty"`
	Links      []string `json:"links,omitempty"`
	OVSBridges []string `json:"ovs_bridges,omitempty"`
	// Restores are files the run changed (kernel settings under /proc/sys
	// or /sys) and what they held before: written back.
	Restores []Restore `json:"restores,omitempty"`
}

// Restore is a file's content to write back.
type Restore struct {
	Path  string `json:"path"`
	Value string `json:"value"`
}

// PIDFile is a glob of pid files and what their processes are called:
// one of Comms starts their /proc/PID/comm ("qemu-system", "dnsmasq").
type PIDFile struct {
	Glob  string   `json:"glob"`
	Comms []string `json:"comms"`
}

// Proc is a process as recorded when it started.
type Proc struct {
	Role string `json:"role"`
	PID  int    `json:"pid"`
	// Start is the process's start time (/proc/PID/stat, clock ticks after
	// boot): a PID used again later has another.
	Start uint64 `json:"start"`
	// Cmdline is the command line the process runs (after any exec by
	// nsenter or ip netns exec).
	Cmdline []string `json:"cmdline"`
}

// Recorder keeps a directory's record up to date as a run starts and
// stops things. Its methods are safe for concurrent use; a nil Recorder
// records nothing.
type Recorder struct {
	mu   sync.Mutex
	path string
	rec  Record
}

// NewRecorder writes a first record into dir (which exists) with this
// process as the owner.
func NewRecorder(dir, kind string) (*Recorder, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	self, err := Snapshot("owner", os.Getpid(), nil)
	if err != nil {
		return nil, err
	}
	r := &Recorder{path: filepath.Join(abs, File), rec: Record{Kind: kind, Dir: abs, Owner: self}}
	return r, r.Update(func(*Record) {})
}

// Update changes the record and writes it (atomically: a sweeper never
// reads half a file).
func (r *Recorder) Update(f func(*Record)) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.rec)
	data, err := json.MarshalIndent(r.rec, "", "  ")
	if err != nil {
		return err
	}
	tmp := r.path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, r.path)
}

// AddProc records a process the run started. cmdline is what it will run
// once exec'd (nil: what it runs now).
func (r *Recorder) AddProc(role string, pid int, cmdline []string) error {
	if r == nil {
		return nil
	}
	p, err := Snapshot(role, pid, cmdline)
	if err != nil {
		return err
	}
	return r.Update(func(rec *Record) { rec.Procs = append(rec.Procs, p) })
}

// DropProc forgets a process the run stopped itself.
func (r *Recorder) DropProc(pid int) error {
	return r.Update(func(rec *Record) {
		out := rec.Procs[:0]
		for _, p := range rec.Procs {
			if p.PID != pid {
				out = append(out, p)
			}
		}
		rec.Procs = out
	})
}

// ErrNoRecord is returned for a directory without a record.
var ErrNoRecord = errors.New("no " + File)

// Read reads dir's record.
func Read(dir string) (Record, error) {
	var rec Record
	data, err := os.ReadFile(filepath.Join(dir, File))
	if errors.Is(err, os.ErrNotExist) {
		return rec, ErrNoRecord
	}
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, fmt.Errorf("%s: %w", File, err)
	}
	return rec, nil
}
