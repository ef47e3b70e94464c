package daemon

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/auth"
	"github.com/godwit-project/godwit/internal/ui"
)

// The web page (internal/ui) lives at /ui/: its files and its login answer
// without credentials; the session cookie it gets then authenticates the
// page's calls to the API as the token (or certificate) it logged in with,
// and each change request must carry the session's CSRF token too.

// uiPrefix is the page's path; everything below it is public (the page
// checks its session itself, the API it calls does the rest).
const uiPrefix = "/ui/"

func (d *Daemon) mountUI(mux *http.ServeMux) {
	if d.sessions == nil {
		d.sessions = ui.NewSessions()
	}
	mux.Handle(uiPrefix, ui.Handler(ui.Options{
		Sessions:   d.sessions,
		Verify:     d.mon.tokens.Verify,
		Connection: func(r *http.Request) auth.Principal { return principalOf(r.Context()) },
	}))
	// A browser pointed at the daemon's address lands on the page.
	toUI := http.RedirectHandler(uiPrefix, http.StatusFound)
	mux.Handle("GET /ui", toUI)
	mux.Handle("GET /{$}", toUI)
}

// publicPath says whether path answers without credentials besides the
// public routes of the API.
func publicPath(path string) bool {
	return path == "/" || path == "/ui" || strings.HasPrefix(path, uiPrefix)
}

// sessionAuth: the web page's session cookie. A cookie of no session (the
// daemon restarted, the session ended) is as if there were none: the
// page shows its login again on the 401.
func (d *Daemon) sessionAuth(r *http.Request) (auth.Principal, bool, error) {
	c, err := r.Cookie(ui.CookieName)
	if err != nil || d.sessions == nil {
		return auth.Anonymous, false, nil
	}
	ss, ok := d.sessions.Lookup(c.Value)
	if !ok {
		return auth.Anonymous, false, nil
	}
	if !safeMethod(r.Method) && !ss.CheckCSRF(r.Header.Get(ui.CSRFHeader)) {
		return auth.Anonymous, true, api.StatusErrorf(http.StatusForbidden,
			"the request lacks the web page's CSRF token (header %s): refused as a possible cross-site request", ui.CSRFHeader)
	}
	return ss.Principal, true, nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// crossSite refuses a change request that a browser sent from another
// site's page: a form or fetch there can reach the daemon (through an SSH
// tunnel to the socket, where the connection alone is root), but the
// browser says where it came from. Clients that are not browsers send
// neither header.
func crossSite(r *http.Request) error {
	if safeMethod(r.Method) {
		return nil
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return api.StatusErrorf(http.StatusForbidden, "a cross-site request (Sec-Fetch-Site: cross-site) may not change anything")
	}
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			return api.StatusErrorf(http.StatusForbidden, "Origin %q is not this daemon (%s): a cross-site request may not change anything", o, r.Host)
		}
	}
	return nil
}
