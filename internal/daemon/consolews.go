package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/console"
)

// The serial console over a websocket (the web page's xterm, the CLI's
// vm console): binary messages from the daemon are the console's output,
// each viewer following the log on its own, so a second viewer never
// stalls the first; binary messages to it are typed into the serial port
// (admin scope only). Text messages from the daemon are JSON notes:
// {"readOnly": true} first for a read-scope viewer, {"error": "..."} when
// input is refused or cannot be written.

type consoleWSInput struct {
	Name  string `path:"name" doc:"VM name"`
	Lines int    `query:"lines" minimum:"0" doc:"Start with the last N lines of the log (0: all of it)."`
}

func (d *Daemon) registerConsoleWS(a huma.API, o huma.Operation) {
	o.Description = "Upgrade to a websocket: binary messages out are the serial console's output, binary messages in are typed into it (admin scope; a read-scope viewer gets {\"readOnly\": true} and its input is refused). A browser's upgrade must come from this daemon's own page (Origin)."
	o.Responses = map[string]*huma.Response{"101": {Description: "Switching to the websocket"}}
	huma.Register(a, o, func(ctx context.Context, in *consoleWSInput) (*huma.StreamResponse, error) {
		if err := d.host.ensure(ctx); err != nil {
			return nil, toStatus(err)
		}
		path, err := d.vms.ConsoleLog(ctx, in.Name)
		if err != nil {
			return nil, toStatus(err)
		}
		return &huma.StreamResponse{Body: func(hc huma.Context) {
			r, w := humago.Unwrap(hc)
			d.serveConsoleWS(w, r, in, path)
		}}, nil
	})
}

// sameOrigin refuses a browser's upgrade from another site's page: the
// browser sends the session cookie with it, and an upgrade is a GET, which
// crossSite lets through.
func sameOrigin(r *http.Request) error {
	r2 := *r
	r2.Method = http.MethodPost // judged as a change
	return crossSite(&r2)
}

func (d *Daemon) serveConsoleWS(w http.ResponseWriter, r *http.Request, in *consoleWSInput, logPath string) {
	if err := sameOrigin(r); err != nil {
		writeError(w, err)
		return
	}
	// The Origin is checked above, with the same rule as every change.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept answered the client
	}
	defer c.CloseNow()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	p := principalOf(r.Context())
	canType := p.Allows(string(Admin))
	note := func(n api.ConsoleNote) {
		b, _ := json.Marshal(n)
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		_ = c.Write(wctx, websocket.MessageText, b)
	}
	if !canType {
		note(api.ConsoleNote{ReadOnly: true})
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		out := &wsWriter{ctx: ctx, c: c}
		if err := console.Copy(ctx, logPath, out, console.Options{Follow: true, Lines: in.Lines}); err != nil && ctx.Err() == nil {
			d.log.Warn("console websocket", "vm", in.Name, "err", err)
		}
	}()
	var pty *console.Input
	defer func() {
		if pty != nil {
			pty.Close()
		}
	}()
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			break
		}
		if typ != websocket.MessageBinary {
			continue // the page sends nothing else yet
		}
		if !canType {
			note(api.ConsoleNote{Error: p.String() + " (scope " + orNone(p.Scope) + ") may not type into the console: it needs the admin scope"})
			continue
		}
		if pty == nil {
			if pty, err = d.openConsoleInput(ctx, in.Name); err != nil {
				d.log.Warn("console input", "vm", in.Name, "by", p.String(), "err", err)
				note(api.ConsoleNote{Error: err.Error()})
				continue
			}
			d.log.Info("console input", "vm", in.Name, "by", p.String())
		}
		if _, err := pty.Write(b); err != nil {
			// The VM restarted (a new pty): open it again next time.
			pty.Close()
			pty = nil
			note(api.ConsoleNote{Error: "typing into the console: " + err.Error()})
		}
	}
	cancel()
	wg.Wait()
}

// openConsoleInput opens the running VM's serial pty for input.
func (d *Daemon) openConsoleInput(ctx context.Context, name string) (*console.Input, error) {
	xml, err := d.hv.XML(ctx, name, false)
	if err != nil {
		return nil, toStatus(err)
	}
	path := console.PtyPath(xml)
	if path == "" {
		return nil, api.Conflict("vm %s is not running, or its serial port has no pty: nothing to type into", name)
	}
	return console.OpenInput(path)
}

// wsWriter sends each write as one binary message.
type wsWriter struct {
	ctx context.Context
	c   *websocket.Conn
}

func (w *wsWriter) Write(p []byte) (int, error) {
	if err := w.c.Write(w.ctx, websocket.MessageBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
