package vm

import (
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
)

// VNCSocket says why a VM has no display to show: unknown, no graphics
// in its spec, not running, or running without the display it was
// given later.
func TestVNCSocketRefusals(t *testing.T) {
	e := newEnv(t)
	e.create(e.spec("plain"), true)
	desk := e.spec("desk")
	desk.Graphics = api.GraphicsVNC
	e.create(desk, false)
	cases := []struct {
		vm, want string
		status   int
	}{
		{"nosuch", "not found", 404},
		{"plain", "its spec has no graphics: vnc", 409},
		{"desk", "only while it runs", 409},
	}
	for _, c := range cases {
		_, err := e.svc.VNCSocket(e.ctx, c.vm)
		if api.Status(err) != c.status || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v (status %d), want %d saying %q", c.vm, err, api.Status(err), c.status, c.want)
		}
	}
	// The fake's live XML is the defined one, with no socket path: what
	// a VM started before graphics: vnc was set looks like.
	e.succeed(e.svc.Start(e.ctx, "desk"))
	if _, err := e.svc.VNCSocket(e.ctx, "desk"); api.Status(err) != 409 || !strings.Contains(err.Error(), "stop and start it") {
		t.Errorf("running without a socket: %v", err)
	}
}
