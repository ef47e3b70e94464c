package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/vnc"
)

// The graphical console over a websocket (the web page's noVNC, vm vnc):
// binary messages both ways are the RFB stream of the VM's VNC display,
// which QEMU serves on a unix socket only. An admin's stream passes as
// it is; a read-scope viewer's is view-only: the daemon passes on its
// requests for pictures and drops its keys, pointer, clipboard and
// resizes (internal/vnc), so the guest never sees them. Every viewer
// shares the display: a second one does not disconnect the first.

type vncWSInput struct {
	Name string `path:"name" doc:"VM name"`
}

func (d *Daemon) registerVNCWS(a huma.API, o huma.Operation) {
	o.Description = "Upgrade to a websocket carrying the RFB (VNC) stream of the VM's display (spec graphics: vnc), security type None: " +
		"the display is a unix socket on the host and the websocket is authenticated. Admin scope may type and point; a read-scope viewer is view-only " +
		"(its input messages are dropped). 409 when the VM has no display now (no graphics: vnc, or not running). " +
		"A browser's upgrade must come from this daemon's own page (Origin)."
	o.Responses = map[string]*huma.Response{"101": {Description: "Switching to the websocket"}}
	huma.Register(a, o, func(ctx context.Context, in *vncWSInput) (*huma.StreamResponse, error) {
		if err := d.host.ensure(ctx); err != nil {
			return nil, toStatus(err)
		}
		sock, err := d.vms.VNCSocket(ctx, in.Name)
		if err != nil {
			return nil, toStatus(err)
		}
		return &huma.StreamResponse{Body: func(hc huma.Context) {
			r, w := humago.Unwrap(hc)
			d.serveVNCWS(w, r, in.Name, sock)
		}}, nil
	})
}

func (d *Daemon) serveVNCWS(w http.ResponseWriter, r *http.Request, name, sock string) {
	if err := sameOrigin(r); err != nil {
		writeError(w, err)
		return
	}
	var dialer net.Dialer
	dctx, dcancel := context.WithTimeout(r.Context(), 10*time.Second)
	display, err := dialer.DialContext(dctx, "unix", sock)
	dcancel()
	if err != nil {
		writeError(w, api.Conflict("vm %s: its VNC display does not answer (it may be stopping): %v", name, err))
		return
	}
	defer display.Close()
	// The Origin is checked above, with the same rule as every change.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true, Subprotocols: []string{"binary"}})
	if err != nil {
		return // Accept answered the client
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	viewer := websocket.NetConn(ctx, c, websocket.MessageBinary)
	p := principalOf(r.Context())
	viewOnly := !p.Allows(string(Admin))
	d.log.Info("vnc viewer", "vm", name, "by", p.String(), "viewOnly", viewOnly)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		_, _ = io.Copy(viewer, display)
	}()
	st, err := vnc.Relay(display, viewer, viewOnly)
	if err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
		d.log.Warn("vnc viewer", "vm", name, "by", p.String(), "err", err)
		c.Close(websocket.StatusPolicyViolation, truncate(err.Error(), 120))
	}
	if st.Dropped > 0 {
		d.log.Info("vnc viewer's input dropped (view only)", "vm", name, "by", p.String(), "messages", st.Dropped)
	}
	cancel()
	display.Close()
	<-done
}

// truncate keeps a websocket close reason within its 123 bytes.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
