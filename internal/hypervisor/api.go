package hypervisor

import (
	"errors"
	"fmt"

	"github.com/godwit-project/godwit/api"
)

// APIState is the API's name for a domain's libvirt state.
func APIState(s State) api.VMState {
	switch s {
	case StateRunning, StateBlocked:
		return api.VMRunning
	case StatePaused:
		return api.VMPaused
	case StateShutdown:
		return api.VMStopping
	case StateShutoff:
		return api.VMStopped
	case StateCrashed:
		return api.VMCrashed
	case StatePMSuspended:
		return api.VMSuspended
	}
	return api.VMUnknown
}

// APIError gives an error that wraps one of the sentinels above the API
// status it stands for: 503 ErrUnavailable, 404 ErrNotFound, 409
// ErrInvalidState, ErrExists and ErrUnsupported. An error with a status already, or with
// none of these, is returned as it is.
func APIError(err error) error {
	switch {
	case err == nil:
		return nil
	case api.Status(err) != 0:
		return err
	case errors.Is(err, ErrUnavailable):
		return api.StatusErrorf(503, "%w", err)
	case errors.Is(err, ErrNotFound):
		return api.StatusErrorf(404, "%w", err)
	case errors.Is(err, ErrInvalidState), errors.Is(err, ErrExists), errors.Is(err, ErrUnsupported):
		return api.StatusErrorf(409, "%w", err)
	}
	return err
}

// APIErrorf is APIError with what was being done in front of the message
// ("begin the backup of vm web1: ..."); an error that carries a status
// already is returned as it is.
func APIErrorf(what string, err error) error {
	if err == nil || api.Status(err) != 0 {
		return err
	}
	return APIError(fmt.Errorf("%s: %w", what, err))
}
