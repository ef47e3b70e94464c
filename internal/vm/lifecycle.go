package vm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/console"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/ops"
)

// DefaultStopTimeout is how long Stop waits for the guest to power off.
const DefaultStopTimeout = 60 * time.Second

// How often Stop looks at the state, and presses the power button again
// (a guest still booting may miss the first press).
const (
	stopPoll    = 250 * time.Millisecond
	stopRepress = 5 * time.Second
)

// action is a lifecycle action: which states allow it, and what it does.
type action struct {
	name    string
	allowed func(api.VMState) bool
	refusal func(vm string, st api.VMState) error
}

func is(states ...api.VMState) func(api.VMState) bool {
	return func(s api.VMState) bool {
		for _, t := range states {
			if s == t {
				return true
			}
		}
		return false
	}
}

var (
	actStart = action{"start", is(api.VMStopped, api.VMCrashed), func(vm string, st api.VMState) error {
		if st == api.VMPaused {
			return api.Conflict("vm %s is paused; resume it instead", vm)
		}
		return api.Conflict("vm %s is already %s", vm, st)
	}}
	actStop   = action{"stop", is(api.VMRunning, api.VMPaused, api.VMStopping, api.VMSuspended, api.VMCrashed), notRunning}
	actKill   = action{"kill", is(api.VMRunning, api.VMPaused, api.VMStopping, api.VMSuspended, api.VMCrashed), notRunning}
	actReboot = action{"reboot", is(api.VMRunning), func(vm string, st api.VMState) error {
		return api.Conflict("vm %s is %s; only a running VM can reboot", vm, st)
	}}
	actPause = action{"pause", is(api.VMRunning), func(vm string, st api.VMState) error {
		if st == api.VMPaused {
			return api.Conflict("vm %s is already paused", vm)
		}
		return api.Conflict("vm %s is %s; only a running VM can be paused", vm, st)
	}}
	actResume = action{"resume", is(api.VMPaused), func(vm string, st api.VMState) error {
		return api.Conflict("vm %s is %s, not paused", vm, st)
	}}
)

func notRunning(vm string, st api.VMState) error {
	return api.Conflict("vm %s is not running (it is %s)", vm, st)
}

// prepare locks the VM, checks it is managed and in a state that allows a,
// and returns its record and an unlock func.
func (s *Service) prepare(ctx context.Context, name string, a action) (record, func(), error) {
	rec, d, unlock, err := s.claim(ctx, name, "vm."+a.name)
	if err != nil {
		return record{}, nil, err
	}
	if st := stateOf(d); !a.allowed(st) {
		unlock()
		return record{}, nil, a.refusal(name, st)
	}
	return rec, unlock, nil
}

// runOp runs f as an operation holding the VM's lock.
func (s *Service) runOp(ctx context.Context, name string, a action, f func(ctx context.Context, o *ops.Op, rec record) error) (api.Operation, error) {
	rec, unlock, err := s.prepare(ctx, name, a)
	if err != nil {
		return api.Operation{}, err
	}
	op := s.ops.Start("vm."+a.name, target(name), func(ctx context.Context, o *ops.Op) error {
		defer unlock()
		return f(ctx, o, rec)
	})
	s.relabel(name, "vm."+a.name, "operation "+op.ID+" (vm."+a.name+")")
	return op, nil
}

// runNow runs a quick action synchronously, holding the VM's lock.
func (s *Service) runNow(ctx context.Context, name string, a action, f func(ctx context.Context) error) (api.VM, error) {
	_, unlock, err := s.prepare(ctx, name, a)
	if err != nil {
		return api.VM{}, err
	}
	err = f(ctx)
	unlock()
	if err != nil {
		return api.VM{}, opError(a.name, name, err)
	}
	return s.Get(ctx, name)
}

// Start boots a stopped VM.
func (s *Service) Start(ctx context.Context, name string) (api.Operation, error) {
	return s.runOp(ctx, name, actStart, func(ctx context.Context, o *ops.Op, rec record) error {
		o.Progress("starting", 0, 0, "")
		if err := s.start(ctx, o, rec); err != nil {
			return err
		}
		s.setRun(ctx, name, true)
		return nil
	})
}

// start boots the domain and records where this boot's console output
// begins in the log.
func (s *Service) start(ctx context.Context, o *ops.Op, rec record) error {
	res := api.StartResult{}
	if rec.ConsoleLog != "" {
		res.ConsoleOffset = console.Size(rec.ConsoleLog)
	}
	if err := s.hv.Start(ctx, rec.Name); err != nil {
		return opError("start", rec.Name, err)
	}
	o.SetResult(res)
	return nil
}

// StopOptions tune Stop.
type StopOptions struct {
	Force   bool
	Timeout time.Duration
}

// Stop shuts a VM down through ACPI and waits up to the timeout for the
// guest to power off; with Force it destroys the VM at once.
func (s *Service) Stop(ctx context.Context, name string, opts StopOptions) (api.Operation, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultStopTimeout
	}
	return s.runOp(ctx, name, actStop, func(ctx context.Context, o *ops.Op, rec record) error {
		var err error
		if opts.Force {
			o.Progress("destroying", 0, 0, "")
			err = opError("stop", name, s.hv.Destroy(ctx, name))
		} else {
			err = s.shutdown(ctx, o, name, opts.Timeout)
		}
		if err == nil {
			s.setRun(ctx, name, false)
		}
		return err
	})
}

func (s *Service) shutdown(ctx context.Context, o *ops.Op, name string, timeout time.Duration) error {
	start := time.Now()
	deadline := start.Add(timeout)
	lastPress := time.Time{}
	for {
		d, err := s.hv.Lookup(ctx, name)
		if err != nil {
			return opError("stop", name, err)
		}
		if !d.State.Active() {
			return nil
		}
		if time.Now().After(deadline) {
			return api.StatusErrorf(504, "vm %s did not shut down within %s (the guest ignored the ACPI power button?); stop it with --force", name, timeout)
		}
		if time.Since(lastPress) >= stopRepress {
			// A paused guest cannot see the power button: resume it first.
			if d.State == hypervisor.StatePaused {
				if err := s.hv.Resume(ctx, name); err != nil {
					return opError("stop", name, err)
				}
			}
			if err := s.hv.Shutdown(ctx, name); err != nil && !errors.Is(err, hypervisor.ErrInvalidState) {
				return opError("stop", name, err)
			}
			lastPress = time.Now()
		}
		o.Progress(fmt.Sprintf("waiting for the guest to power off (%ds of %ds)", int(time.Since(start).Seconds()), int(timeout.Seconds())), 0, 0, "")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(stopPoll):
		}
	}
}

// Reboot asks the guest to reboot (ACPI).
func (s *Service) Reboot(ctx context.Context, name string) (api.Operation, error) {
	return s.runOp(ctx, name, actReboot, func(ctx context.Context, o *ops.Op, rec record) error {
		o.Progress("rebooting", 0, 0, "")
		return opError("reboot", name, s.hv.Reboot(ctx, name))
	})
}

// Kill destroys a running VM at once.
func (s *Service) Kill(ctx context.Context, name string) (api.VM, error) {
	return s.runNow(ctx, name, actKill, func(ctx context.Context) error {
		if err := s.hv.Destroy(ctx, name); err != nil {
			return err
		}
		s.setRun(ctx, name, false)
		return nil
	})
}

// Pause freezes the VM's vCPUs.
func (s *Service) Pause(ctx context.Context, name string) (api.VM, error) {
	return s.runNow(ctx, name, actPause, func(ctx context.Context) error { return s.hv.Suspend(ctx, name) })
}

// Resume unfreezes a paused VM.
func (s *Service) Resume(ctx context.Context, name string) (api.VM, error) {
	return s.runNow(ctx, name, actResume, func(ctx context.Context) error { return s.hv.Resume(ctx, name) })
}
