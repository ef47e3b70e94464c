package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/godwit-project/godwit/api"
)

func TestAPIState(t *testing.T) {
	for s, want := range map[State]api.VMState{
		StateNoState: api.VMUnknown, StateRunning: api.VMRunning, StateBlocked: api.VMRunning, StatePaused: api.VMPaused,
		StateShutdown: api.VMStopping, StateShutoff: api.VMStopped, StateCrashed: api.VMCrashed,
		StatePMSuspended: api.VMSuspended, State(99): api.VMUnknown,
	} {
		if got := APIState(s); got != want {
			t.Errorf("APIState(%s) = %s, want %s", s, got, want)
		}
	}
}

// The table, entry by entry, and what it leaves alone.
func TestAPIError(t *testing.T) {
	if APIError(nil) != nil {
		t.Error("APIError(nil) is not nil")
	}
	plain := errors.New("plain")
	if got := APIError(plain); got != plain {
		t.Errorf("APIError of a plain error = %v, want it as it is", got)
	}
	has := api.Conflict("has a status")
	if got := APIError(fmt.Errorf("wrapped: %w", ErrNotFound)); api.Status(got) != 404 || !errors.Is(got, ErrNotFound) || got.Error() != "wrapped: not found" {
		t.Errorf("not found: %v (status %d)", got, api.Status(got))
	}
	for _, c := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("x: %w", ErrUnavailable), 503},
		{fmt.Errorf("x: %w", ErrNotFound), 404},
		{fmt.Errorf("x: %w", ErrInvalidState), 409},
		{fmt.Errorf("x: %w", ErrExists), 409},
		{fmt.Errorf("x: %w", ErrUnsupported), 409},
		{fmt.Errorf("libvirt did not answer: %w", context.DeadlineExceeded), 504},
		// libvirt gone and a deadline passed: libvirt's absence says more.
		{fmt.Errorf("x: %w", errors.Join(context.DeadlineExceeded, ErrUnavailable)), 503},
		{fmt.Errorf("x: %w", ErrAgentUnavailable), 0},
		{fmt.Errorf("x: %w", ErrCheckpointBroken), 0},
		{context.Canceled, 0},
		{has, 409},
		{fmt.Errorf("a status wins over the table: %w", api.BadRequest("bad: %w", ErrNotFound)), 400},
	} {
		if got := api.Status(APIError(c.err)); got != c.want {
			t.Errorf("APIError(%v): status %d, want %d", c.err, got, c.want)
		}
	}
	for _, s := range statuses {
		if got := api.Status(APIError(fmt.Errorf("x: %w", s.err))); got != s.code {
			t.Errorf("table entry %v: status %d, want %d", s.err, got, s.code)
		}
	}
	if got := APIError(has); got != error(has) {
		t.Errorf("an error with a status came back as %v", got)
	}
}

// APIErrorf puts what was being done in front, and leaves an error with a
// status (already said what failed) and a plain one's status alone.
func TestAPIErrorf(t *testing.T) {
	if APIErrorf("x", nil) != nil {
		t.Error("APIErrorf of nil is not nil")
	}
	got := APIErrorf("begin the backup of vm web1", fmt.Errorf("job: %w", ErrInvalidState))
	if api.Status(got) != 409 || !errors.Is(got, ErrInvalidState) || got.Error() != "begin the backup of vm web1: job: invalid state" {
		t.Errorf("invalid state: %q (status %d)", got, api.Status(got))
	}
	if got := APIErrorf("get XML", errors.New("boom")); api.Status(got) != 0 || got.Error() != "get XML: boom" {
		t.Errorf("plain: %q (status %d)", got, api.Status(got))
	}
	has := api.NotFound("vm web1 not found")
	if got := APIErrorf("look up", has); got != error(has) {
		t.Errorf("an error with a status came back as %v", got)
	}
}
