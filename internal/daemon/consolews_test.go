package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/godwit-project/godwit/api"
)

// dialConsole opens the console websocket as a browser on origin would
// (the cookie jar of hc); it returns the HTTP status when refused.
func (td *tlsDaemon) dialConsole(hc *http.Client, origin, vm string) (*websocket.Conn, int) {
	td.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	c, resp, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(td.url, "https")+"/v1/vms/"+vm+"/console/ws",
		&websocket.DialOptions{HTTPClient: hc, HTTPHeader: h})
	if err != nil {
		if resp == nil {
			td.t.Fatalf("dial the console of %s: %v", vm, err)
		}
		return nil, resp.StatusCode
	}
	td.t.Cleanup(func() { c.CloseNow() })
	return c, http.StatusSwitchingProtocols
}

// readConsole reads the websocket until its output holds want, returning
// the text notes seen on the way.
func readConsole(t *testing.T, c *websocket.Conn, want string) []api.ConsoleNote {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out strings.Builder
	var notes []api.ConsoleNote
	for !strings.Contains(out.String(), want) {
		typ, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("reading the console for %q: %v (output so far %q, notes %+v)", want, err, out.String(), notes)
		}
		if typ == websocket.MessageText {
			var n api.ConsoleNote
			_ = json.Unmarshal(b, &n)
			notes = append(notes, n)
			continue
		}
		out.Write(b)
	}
	return notes
}

// The console websocket: no session, 401; a session's upgrade from
// another site's page, 403 before anything is read; from the page, two
// viewers each see what the serial port prints (the second does not stop
// the first); a read-scope viewer is told it is read-only and its typing
// is refused.
func TestConsoleWebsocket(t *testing.T) {
	td := serveTLS(t)
	ctx := context.Background()
	td.createVM(td.spec("web1"), false)
	logPath, err := td.d.vms.ConsoleLog(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logPath, []byte("boot line one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	admin, _ := td.c.CreateToken(ctx, api.TokenRequest{Name: "ops", Scope: "admin"})
	reader, _ := td.c.CreateToken(ctx, api.TokenRequest{Name: "viewer", Scope: "read"})

	if _, status := td.dialConsole(td.browser(), td.url, "web1"); status != http.StatusUnauthorized {
		t.Errorf("console without a session: %d, want 401", status)
	}
	b := td.browser()
	td.login(b, admin.Secret)
	if _, status := td.dialConsole(b, "https://evil.example", "web1"); status != http.StatusForbidden {
		t.Errorf("console from another site's page with the session: %d, want 403", status)
	}
	if _, status := td.dialConsole(b, td.url, "nosuch"); status != http.StatusNotFound {
		t.Errorf("console of no VM: %d, want 404", status)
	}

	first, status := td.dialConsole(b, td.url, "web1")
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("console from the page: %d", status)
	}
	if notes := readConsole(t, first, "boot line one"); len(notes) != 0 {
		t.Errorf("an admin viewer got notes %+v", notes)
	}
	second, _ := td.dialConsole(b, td.url, "web1")
	readConsole(t, second, "boot line one")
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("later line two\n")
	f.Close()
	readConsole(t, second, "later line two")
	readConsole(t, first, "later line two")

	rb := td.browser()
	td.login(rb, reader.Secret)
	ro, status := td.dialConsole(rb, td.url, "web1")
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("console as a viewer: %d", status)
	}
	if notes := readConsole(t, ro, "later line two"); len(notes) == 0 || !notes[0].ReadOnly {
		t.Errorf("a viewer's notes %+v, want readOnly first", notes)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := ro.Write(wctx, websocket.MessageBinary, []byte("reboot\n")); err != nil {
		t.Fatal(err)
	}
	typ, msg, err := ro.Read(wctx)
	if err != nil || typ != websocket.MessageText || !strings.Contains(string(msg), "needs the admin scope") {
		t.Errorf("a viewer typing: %v %s %v, want a refusal", typ, msg, err)
	}
}
