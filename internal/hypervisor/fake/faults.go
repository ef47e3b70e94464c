package fake

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

// ErrInjected is what a Fault without Err wraps.
var ErrInjected = errors.New("injected failure")

// Action is what a fault does to the call it strikes.
type Action int

const (
	// Fail makes the call return the fault's error.
	Fail Action = iota
	// Hang blocks the call until its context ends, its connection is
	// killed, or ClearFaults (then it goes on as if nothing happened). A
	// streaming call stops moving bytes instead: a migration stalls until
	// its job is aborted, as over a dead link.
	Hang
	// Crash kills and restarts libvirtd at the call: it fails with an
	// error wrapping hypervisor.ErrUnavailable, every migration
	// connection breaks, and libvirtd's recovery ends the jobs they
	// carried, as after a real libvirtd restart.
	Crash
)

// Fault is a failure to inject into calls of one method.
type Fault struct {
	// Method is the method, e.g. "CreateVolume", "Perform" (a Session's
	// phases are Begin, Prepare, Perform, Finish and Confirm), or
	// "ReadExport" and "OpenExport" for a backup's exports.
	Method string
	// Name limits the fault to calls about this domain, pool or volume
	// (for CreateVolume the new volume's name, for Define the domain's; a
	// volume may also be named "pool/volume"; for ReadExport the export's
	// name); empty matches every call.
	Name string
	// After lets this many matching calls succeed before failing.
	After int
	// Times is how many calls fail: 0 means one, negative means all.
	Times int
	// Err is what the calls return; nil means an error wrapping
	// ErrInjected (Fail) or hypervisor.ErrUnavailable (Crash).
	Err error
	// Action is what the fault does: Fail (the default), Hang or Crash.
	Action Action
	// Bytes, for a streaming call (Perform's migration stream, reads of a
	// backup export), lets this many bytes move before the fault strikes
	// mid-stream; 0 strikes at the call's start. After does not apply
	// with Bytes: each stream that reaches Bytes counts toward Times.
	Bytes uint64
}

// methods are the methods a Fault may name.
var methods = map[string]bool{
	"Define": true, "Undefine": true, "Start": true, "Shutdown": true, "Destroy": true,
	"Reboot": true, "Suspend": true, "Resume": true, "Lookup": true, "List": true,
	"XML": true, "SetAutostart": true, "RunTransient": true,
	"EnsurePool": true, "PoolInfo": true, "CreateVolume": true, "DeleteVolume": true,
	"VolumeInfo": true, "ResizeVolume": true,
	"HostInfo": true, "Ping": true, "DomainStats": true, "DomainEvents": true,
	"DefineNetwork": true, "StartNetwork": true, "SetNetworkAutostart": true, "StopNetwork": true,
	"UndefineNetwork": true, "LookupNetwork": true, "ListNetworks": true, "NetworkLeases": true,
	"NetworkPortOwners": true, "AttachDevice": true, "DetachDevice": true, "InterfaceAddresses": true,
	"ListPools": true, "DefinePool": true, "DeletePool": true, "ListVolumes": true, "CloneVolume": true,
	"UploadVolume": true, "DownloadVolume": true, "BlockResize": true,
	"OpenSession": true, "Begin": true, "Prepare": true, "Perform": true, "Finish": true, "Confirm": true,
	"JobStats": true, "AbortJob": true, "StartPostcopy": true, "SetMaxDowntime": true, "CompareCPU": true,
	"Save": true, "Restore": true, "SnapshotXMLs": true, "RedefineSnapshot": true,
	"BeginBackup": true, "ActiveJob": true, "Checkpoints": true, "DeleteCheckpoint": true, "StartPaused": true,
	"OpenExport": true, "ReadExport": true,
	"CreateSnapshot": true, "Snapshots": true, "RevertSnapshot": true, "DeleteSnapshot": true, "MakeCurrent": true,
	"SetMemory": true, "SetVCPUs": true, "SetBlockLimits": true, "PinVCPU": true, "PinEmulator": true,
}

// streaming are the methods that move bytes, where Fault.Bytes applies.
var streaming = map[string]bool{"Perform": true, "ReadExport": true}

// Inject adds a fault. It panics on a method the fake does not have, or
// Bytes on a method that streams none, so that a typo cannot make a test
// pass without injecting anything.
func (f *Fake) Inject(ft Fault) {
	if !methods[ft.Method] {
		panic("fake: no hypervisor method " + ft.Method)
	}
	if ft.Bytes > 0 && !streaming[ft.Method] {
		panic("fake: " + ft.Method + " streams no bytes")
	}
	if ft.Times == 0 {
		ft.Times = 1
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &ft)
}

// FailNext makes the next call of method return err (an error wrapping
// ErrInjected when nil).
func (f *Fake) FailNext(method string, err error) {
	f.Inject(Fault{Method: method, Err: err})
}

// ClearFaults removes the faults that have not struck yet, and lets the
// calls they hang go on.
func (f *Fake) ClearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
	close(f.resume)
	f.resume = make(chan struct{})
}

func (ft *Fault) matches(method, name string) bool {
	return ft.Method == method && (ft.Name == "" || ft.Name == name || strings.HasSuffix(name, "/"+ft.Name))
}

// takeFault finds the fault that strikes a call (stream false) or a
// stream that has moved moved bytes, and counts it. Callers hold f.mu.
func (f *Fake) takeFault(method, name string, stream bool, moved uint64) *Fault {
	for i, ft := range f.faults {
		if !ft.matches(method, name) || stream != (ft.Bytes > 0) || (stream && moved < ft.Bytes) {
			continue
		}
		if !stream && ft.After > 0 {
			ft.After--
			continue
		}
		if ft.Times > 0 {
			ft.Times--
			if ft.Times == 0 {
				f.faults = append(f.faults[:i], f.faults[i+1:]...)
			}
		}
		return ft
	}
	return nil
}

// enter records a call and returns the error it must fail with, if any:
// its connection killed (then it blocks until Release), libvirt being
// down, or an injected fault. Callers hold f.mu; a hanging call lets go
// of it while it waits.
func (f *Fake) enter(ctx context.Context, method, name string) error {
	call := method
	if name != "" {
		call += " " + name
	}
	f.calls = append(f.calls, call)
	if f.conn.dead {
		return f.freeze(call)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", call, err)
	}
	if f.down {
		return &Error{Op: call, Msg: "libvirt is not reachable (the fake hypervisor is down)", Kind: hypervisor.ErrUnavailable}
	}
	if ft := f.takeFault(method, name, false, 0); ft != nil {
		if ft.Action == Hang {
			return f.hang(ctx, call)
		}
		return f.strike(ft, call)
	}
	return nil
}

// strike fails a call (or stream) as ft says: Fail or Crash. Callers hold
// f.mu.
func (f *Fake) strike(ft *Fault, call string) error {
	if ft.Action == Crash {
		f.restartLocked()
		if ft.Err != nil {
			return ft.Err
		}
		return &Error{Op: call, Msg: "End of file while reading data: Input/output error (libvirtd died)", Kind: hypervisor.ErrUnavailable}
	}
	if ft.Err != nil {
		return ft.Err
	}
	return &Error{Op: call, Msg: "injected failure", Kind: ErrInjected}
}

// hang blocks a call until ctx ends, ClearFaults (nil: go on) or its
// connection is killed. Callers hold f.mu, which hang lets go of while it
// waits.
func (f *Fake) hang(ctx context.Context, call string) error {
	resume := f.resume
	f.mu.Unlock()
	defer f.mu.Lock()
	select {
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", call, ctx.Err())
	case <-resume:
		return nil
	case <-f.conn.killed:
		<-f.conn.thaw
		return errKilled(call)
	}
}

// conn is one client process's connection to the libvirtd.
type conn struct {
	dead     bool
	killed   chan struct{} // closed by Kill
	thaw     chan struct{} // closed by Release
	released bool
	sessions map[*session]bool
}

func errKilled(call string) error {
	return &Error{Op: call, Msg: "the process that held this connection was killed", Kind: hypervisor.ErrUnavailable}
}

// freeze blocks a call of a killed connection until Release. Callers hold
// f.mu, which freeze lets go of while it waits.
func (f *Fake) freeze(call string) error {
	f.mu.Unlock()
	<-f.conn.thaw
	f.mu.Lock()
	return errKilled(call)
}

// Kill ends the process that holds this connection, as kill -9 would: its
// calls, those in flight and any later one, never return until Release (a
// dead process makes no more calls), and libvirtd runs its close
// callbacks on its migration sessions (see Session.Close).
func (f *Fake) Kill() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn.dead {
		return
	}
	f.conn.dead = true
	close(f.conn.killed)
	for s := range f.conn.sessions {
		f.closeSessionLocked(s)
	}
}

// Release lets the calls of a killed connection return, with an error
// wrapping hypervisor.ErrUnavailable, so that the goroutines of a "dead"
// process end with the test.
func (f *Fake) Release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn.dead && !f.conn.released {
		f.conn.released = true
		close(f.conn.thaw)
	}
}

// restartLocked is libvirtd dying and coming back: every migration
// connection breaks (its close callbacks run) and backup jobs end, as
// libvirtd's recovery of a job it lost track of does. Callers hold f.mu.
func (f *Fake) restartLocked() {
	for _, c := range f.conns {
		for s := range c.sessions {
			f.closeSessionLocked(s)
		}
	}
	for _, d := range f.domains {
		d.backup = nil
	}
}
