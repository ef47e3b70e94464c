package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"net/http"

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

// statuses is the one table from errors to API statuses, as DESIGN.md
// has them: 404 unknown, 409 wrong state, conflict or unsupported, 503
// libvirt down, 504 a deadline passed. The first entry an error wraps
// wins, so a call that failed because libvirt went away is 503 even if a
// deadline passed meanwhile. APIError applies it where the services make
// their errors; the daemon's mapper (internal/daemon) applies it to
// whatever reaches a handler, and answers 500 for an error it has no
// entry for.
var statuses = []struct {
	err  error
	code int
}{
	{ErrUnavailable, http.StatusServiceUnavailable},
	{ErrNotFound, http.StatusNotFound},
	{ErrInvalidState, http.StatusConflict},
	{ErrExists, http.StatusConflict},
	{ErrUnsupported, http.StatusConflict},
	{context.DeadlineExceeded, http.StatusGatewayTimeout},
}

// APIError gives an error that wraps an error of the table the status it
// stands for. An error with a status already, or with no entry, is
// returned as it is.
func APIError(err error) error {
	if err == nil || api.Status(err) != 0 {
		return err
	}
	for _, s := range statuses {
		if errors.Is(err, s.err) {
			return api.StatusErrorf(s.code, "%w", err)
		}
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
