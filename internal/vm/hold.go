package vm

import (
	"context"

	"github.com/godwit-project/godwit/api"
)

// Hold claims a managed VM for an action another service runs on it (a
// backup, a snapshot), the way the VM's own actions claim it: while held,
// a second action on the VM gets a 409 that names holder. It returns the
// VM as it is now and the func that releases it.
func (s *Service) Hold(ctx context.Context, name, holder string) (api.VM, func(), error) {
	rec, d, unlock, err := s.claim(ctx, name, holder)
	if err != nil {
		return api.VM{}, nil, err
	}
	return s.view(rec, d, true), unlock, nil
}

// HoldSettled is Hold for actions that need the VM running, paused or
// stopped (not crashed, suspended, or between states): in any other state
// it lets go and answers 409 "vm NAME is STATE; VERB a running, paused or
// stopped VM".
func (s *Service) HoldSettled(ctx context.Context, name, holder, verb string) (api.VM, func(), error) {
	v, release, err := s.Hold(ctx, name, holder)
	if err != nil {
		return v, nil, err
	}
	switch v.State {
	case api.VMRunning, api.VMPaused, api.VMStopped:
		return v, release, nil
	}
	release()
	return api.VM{}, nil, api.Conflict("vm %s is %s; %s a running, paused or stopped VM", name, v.State, verb)
}

// Relabel changes what a held VM's 409 names (once an operation id is
// known), if the hold still says from.
func (s *Service) Relabel(name, from, to string) { s.relabel(name, from, to) }
