// Package ui serves godwit's web page at /ui/: static files built into the
// binary (nothing comes from a CDN), and the login that turns an API token,
// or a connection that already proves who it is (a client certificate,
// root on the unix socket through an SSH tunnel), into a session cookie.
// The page itself talks to the REST API with that cookie; the daemon's
// authentication accepts it there (see internal/daemon/ui.go).
package ui

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"strings"

	"github.com/godwit-project/godwit/internal/auth"
)

//go:embed assets
var assets embed.FS

// ContentSecurityPolicy allows the page's own files and API only: no
// inline script, no other origin, no framing. The page itself (index.html)
// gets PageCSP: style elements with its nonce too, which xterm.js makes.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// PageCSP is index.html's policy, with a fresh nonce per response.
func PageCSP(nonce string) string {
	return strings.Replace(ContentSecurityPolicy, "style-src 'self'", "style-src 'self' 'nonce-"+nonce+"'", 1)
}

// Options wire the page to the daemon.
type Options struct {
	Sessions *Sessions
	// Verify checks an API token's secret (ErrBadToken when it is wrong).
	Verify func(ctx context.Context, secret string) (auth.Principal, error)
	// Connection is who the request proves to be without a session:
	// a client certificate, root on the unix socket (Anonymous for none).
	Connection func(r *http.Request) auth.Principal
}

// SessionInfo is what the page learns of its session.
type SessionInfo struct {
	Name  string `json:"name"`
	Scope string `json:"scope"`
	CSRF  string `json:"csrf"`
	// ContinueAs, on a 401, names who the connection proves to be: the
	// page offers to log in as that without a token.
	ContinueAs string `json:"continueAs,omitempty"`
}

// Handler serves /ui/.
func Handler(o Options) http.Handler {
	files, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	static := staticHandler(files)
	page, err := fs.ReadFile(files, "index.html")
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ui/", static)
	mux.HandleFunc("GET /ui/{$}", servePage(page))
	mux.HandleFunc("GET /ui/index.html", servePage(page))
	mux.HandleFunc("GET /ui/api/session", o.session)
	mux.HandleFunc("POST /ui/api/login", o.login)
	mux.HandleFunc("POST /ui/api/logout", o.logout)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		mux.ServeHTTP(w, r)
	})
}

// servePage answers index.html with a nonce of its own in the page and
// its CSP.
func servePage(page []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 18)
		if _, err := rand.Read(b); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		nonce := base64.StdEncoding.EncodeToString(b)
		w.Header().Set("Content-Security-Policy", PageCSP(nonce))
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(bytes.ReplaceAll(page, []byte("{{nonce}}"), []byte(nonce)))
	}
}

func (o Options) current(r *http.Request) (*Session, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return nil, false
	}
	return o.Sessions.Lookup(c.Value)
}

func (o Options) session(w http.ResponseWriter, r *http.Request) {
	if ss, ok := o.current(r); ok {
		writeJSON(w, http.StatusOK, info(ss))
		return
	}
	out := map[string]any{"error": "not logged in", "code": http.StatusUnauthorized}
	if p := o.Connection(r); p.Kind != "" {
		out["continueAs"] = p.String()
	}
	writeJSON(w, http.StatusUnauthorized, out)
}

func info(ss *Session) SessionInfo {
	return SessionInfo{Name: ss.Principal.String(), Scope: ss.Principal.Scope, CSRF: ss.CSRF}
}

// login takes {"token": "gwt_..."}, or {} to log in as the connection.
func (o Options) login(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "token: the login wants a JSON body {\"token\": \"gwt_...\"}")
		return
	}
	var p auth.Principal
	switch tok := strings.TrimSpace(in.Token); {
	case tok != "":
		var err error
		p, err = o.Verify(r.Context(), tok)
		if errors.Is(err, auth.ErrBadToken) {
			writeError(w, http.StatusUnauthorized, "token: invalid or revoked (godwit token create makes one)")
			return
		}
		if err != nil {
			writeError(w, http.StatusInternalServerError, "token: "+err.Error())
			return
		}
	default:
		p = o.Connection(r)
		if p.Kind == "" {
			writeError(w, http.StatusUnauthorized, "token: required (godwit token create --name NAME makes one)")
			return
		}
	}
	if p.Scope != auth.ScopeRead && p.Scope != auth.ScopeAdmin {
		writeError(w, http.StatusForbidden, p.String()+" may not use the web page (scope "+p.Scope+")")
		return
	}
	id, ss := o.Sessions.Create(p)
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: "/", MaxAge: int(SessionTTL.Seconds()),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
	writeJSON(w, http.StatusOK, info(ss))
}

func (o Options) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(CookieName); err == nil {
		o.Sessions.Delete(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": msg, "code": status})
}
