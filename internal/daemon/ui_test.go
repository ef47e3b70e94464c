package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/ui"
)

// browser is an HTTPS client with a cookie jar, as a browser on the page.
func (td *tlsDaemon) browser() *http.Client {
	hc := td.httpsClient("")
	hc.Jar, _ = cookiejar.New(nil)
	return hc
}

// page sends a request as the page's script would: with the CSRF token
// (csrf "" for none) and the Origin header browsers add.
func (td *tlsDaemon) page(hc *http.Client, csrf, origin, method, path, body string) (int, http.Header, []byte) {
	td.t.Helper()
	h := http.Header{}
	if csrf != "" {
		h.Set(ui.CSRFHeader, csrf)
	}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return td.send(hc, h, method, path, body)
}

func (td *tlsDaemon) login(hc *http.Client, token string) ui.SessionInfo {
	td.t.Helper()
	status, h, body := td.page(hc, "", td.url, "POST", "/ui/api/login", `{"token":"`+token+`"}`)
	if status != 200 {
		td.t.Fatalf("login: %d %s", status, body)
	}
	c := h.Get("Set-Cookie")
	for _, want := range []string{ui.CookieName + "=", "HttpOnly", "Secure", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(c, want) {
			td.t.Errorf("session cookie %q lacks %s", c, want)
		}
	}
	var s ui.SessionInfo
	if err := json.Unmarshal(body, &s); err != nil || s.CSRF == "" {
		td.t.Fatalf("login answer %s: %v", body, err)
	}
	return s
}

// The page and its login answer anyone, with a strict CSP; a token logs
// a browser in with a cookie that then reads and acts like the token, a
// change request must carry the session's CSRF token, a read-only login
// cannot act, a request from another site's page is refused however it
// authenticates, and a logout ends the session.
func TestWebPageSessions(t *testing.T) {
	td := serveTLS(t)
	ctx := context.Background()
	td.createVM(td.spec("web1"), false)
	admin, err := td.c.CreateToken(ctx, api.TokenRequest{Name: "ops", Scope: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	reader, err := td.c.CreateToken(ctx, api.TokenRequest{Name: "viewer", Scope: "read"})
	if err != nil {
		t.Fatal(err)
	}
	b := td.browser()

	status, h, body := td.page(b, "", "", "GET", "/ui/", "")
	if status != 200 || !strings.Contains(string(body), `<script src="app.js"`) {
		t.Fatalf("GET /ui/: %d %s", status, body)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if status, _, body := td.page(b, "", "", "GET", "/ui/app.js", ""); status != 200 || !strings.Contains(string(body), "X-Godwit-CSRF") {
		t.Errorf("GET /ui/app.js: %d", status)
	}
	noRedirect := td.browser()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if status, h, _ := td.page(noRedirect, "", "", "GET", "/", ""); status != http.StatusFound || h.Get("Location") != "/ui/" {
		t.Errorf("GET /: %d to %q, want a redirect to /ui/", status, h.Get("Location"))
	}
	// Not logged in: the session says so, the API refuses.
	if status, _, _ := td.page(b, "", "", "GET", "/ui/api/session", ""); status != 401 {
		t.Errorf("session before login: %d", status)
	}
	if status, _, body := td.page(b, "", td.url, "POST", "/ui/api/login", `{"token":"gwt_wrong"}`); status != 401 || !strings.Contains(string(body), "token: invalid") {
		t.Errorf("login with a bad token: %d %s", status, body)
	}
	if status, _, body := td.page(b, "", td.url, "POST", "/ui/api/login", `{}`); status != 401 || !strings.Contains(string(body), "token: required") {
		t.Errorf("login without a token over TCP: %d %s", status, body)
	}

	s := td.login(b, admin.Secret)
	if s.Scope != "admin" || s.Name != "token:ops" {
		t.Errorf("session %+v", s)
	}
	if status, _, body := td.page(b, "", "", "GET", "/v1/vms", ""); status != 200 || !strings.Contains(string(body), "web1") {
		t.Fatalf("GET /v1/vms with the cookie: %d %s", status, body)
	}
	// A change without the CSRF token (what a form on another site would
	// send with the cookie) is refused, and nothing happens.
	status, h, body = td.page(b, "", "", "POST", "/v1/vms/web1/start", "")
	wantError(t, "start without the CSRF token", status, h, body, 403, "CSRF token")
	status, h, body = td.page(b, "wrong", "", "POST", "/v1/vms/web1/start", "")
	wantError(t, "start with a wrong CSRF token", status, h, body, 403, "CSRF token")
	if v, _ := td.c.GetVM(ctx, "web1"); v.State != api.VMStopped {
		t.Fatalf("a refused start started web1: %s", v.State)
	}
	// The right token from another site's page: refused by its Origin.
	status, h, body = td.page(b, s.CSRF, "https://evil.example", "POST", "/v1/vms/web1/start", "")
	wantError(t, "start from another origin", status, h, body, 403, "cross-site")
	// From the page itself: it starts.
	if status, _, body := td.page(b, s.CSRF, td.url, "POST", "/v1/vms/web1/start", ""); status != 202 {
		t.Fatalf("start from the page: %d %s", status, body)
	}
	// Another site's page cannot use a bearer token's or the socket's
	// authority either: the Origin check comes before authentication.
	status, h, body = td.page(td.httpsClient(""), "", "https://evil.example", "POST", "/v1/vms/web1/stop", `{}`)
	wantError(t, "stop from another origin, anonymous", status, h, body, 403, "cross-site")

	// A read-only login reads and cannot act.
	rb := td.browser()
	rs := td.login(rb, reader.Secret)
	if rs.Scope != "read" {
		t.Errorf("viewer session %+v", rs)
	}
	if status, _, _ := td.page(rb, "", "", "GET", "/v1/vms/web1", ""); status != 200 {
		t.Errorf("viewer GET: %d", status)
	}
	status, h, body = td.page(rb, rs.CSRF, td.url, "POST", "/v1/vms/web1/stop", `{"force":true}`)
	wantError(t, "viewer stop", status, h, body, 403, "needs the admin scope")

	// Logout ends the session: the cookie no longer authenticates.
	if status, _, _ := td.page(b, s.CSRF, td.url, "POST", "/ui/api/logout", ""); status != 204 {
		t.Errorf("logout: %d", status)
	}
	if status, _, _ := td.page(b, "", "", "GET", "/v1/vms", ""); status != 401 {
		t.Errorf("GET /v1/vms after logout: %d, want 401", status)
	}
}

// On the unix socket (an SSH tunnel to it) the connection is root: the
// page offers to continue as that, without a token.
func TestWebPageOnTheSocket(t *testing.T) {
	td := newDaemon(t)
	status, _, body := td.do("GET", "/ui/api/session", "")
	if status != 401 || !strings.Contains(string(body), `"continueAs":"local:uid=`) {
		t.Fatalf("session on the socket: %d %s", status, body)
	}
	status, _, body = td.do("POST", "/ui/api/login", `{}`)
	if status != 200 || !strings.Contains(string(body), `"scope":"admin"`) {
		t.Fatalf("login as the connection: %d %s", status, body)
	}
}
