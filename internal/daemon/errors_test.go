package daemon

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// toStatus answers with the one table (hypervisor.APIError's), 500 for
// what it lacks, and keeps the whole message.
func TestToStatus(t *testing.T) {
	if toStatus(nil) != nil {
		t.Fatal("toStatus(nil) is not nil")
	}
	for _, c := range []struct {
		err  error
		want int
	}{
		{api.BadRequest("cpus: -2"), 400},
		{fmt.Errorf("start vm a: %w", hypervisor.ErrNotFound), 404},
		{fmt.Errorf("start vm a: %w", hypervisor.ErrInvalidState), 409},
		{fmt.Errorf("define: %w", hypervisor.ErrExists), 409},
		{fmt.Errorf("backup: %w", hypervisor.ErrUnsupported), 409},
		{fmt.Errorf("list: %w", hypervisor.ErrUnavailable), 503},
		{fmt.Errorf("list: libvirt did not answer: %w", context.DeadlineExceeded), 504},
		{fmt.Errorf("backup: %w", hypervisor.ErrCheckpointBroken), 500},
		{errors.New("boom"), 500},
		{fmt.Errorf("migrate vm a: %w", api.StatusErrorf(502, "cannot reach b")), 502},
	} {
		got := toStatus(c.err)
		var se *api.StatusError
		if !errors.As(got, &se) || se.Code != c.want || se.Message != c.err.Error() {
			t.Errorf("toStatus(%v) = %#v, want code %d and the whole message", c.err, got, c.want)
		}
		// Where the services' mapper gives a status, the daemon's agrees.
		if s := api.Status(hypervisor.APIError(c.err)); s != 0 && s != se.Code {
			t.Errorf("%v: APIError says %d, toStatus %d", c.err, s, se.Code)
		}
	}
}
