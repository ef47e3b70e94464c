package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"

	"github.com/danielgtaylor/huma/v2"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/auth"
)

// More access levels (Read and Admin are in routes.go).
const (
	// Public routes answer without credentials: health probes, a host
	// joining with a join token.
	Public Access = auth.AccessPublic
	// Peer routes are called by other hosts' daemons (migration phases).
	Peer Access = auth.AccessPeer
)

// reqInfo travels with a request through the middlewares: who sent it
// and which route served it (for the audit log and the metrics).
type reqInfo struct {
	principal auth.Principal
	route     string // huma operation id, "" for none
}

type reqInfoKey struct{}

func infoOf(ctx context.Context) *reqInfo {
	ri, _ := ctx.Value(reqInfoKey{}).(*reqInfo)
	return ri
}

// principalOf returns who sent the request being served in ctx.
func principalOf(ctx context.Context) auth.Principal {
	if ri := infoOf(ctx); ri != nil {
		return ri.principal
	}
	return auth.Anonymous
}

// localPeer is the process at the other end of a unix socket connection.
type localPeer struct{ uid, pid int }

type localPeerKey struct{}

// connContext remembers, per connection, the credentials of a unix
// socket peer (SO_PEERCRED).
func connContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return ctx
	}
	return context.WithValue(ctx, localPeerKey{}, localPeer{uid: int(cred.Uid), pid: int(cred.Pid)})
}

// authenticator finds the principal of a request, or says it does not
// apply (ok false). An error refuses the request (401 or 403).
type authenticator func(r *http.Request) (p auth.Principal, ok bool, err error)

// authenticators are tried in order; the first that applies decides.
func (d *Daemon) authenticators() []authenticator {
	return []authenticator{d.localAuth, d.sessionAuth, d.tokenAuth, d.certAuth, d.forwardedAuth, d.peerAuth}
}

// localAuth: the unix socket serves root (or the daemon's own user) only,
// with full admin rights. The socket file is 0600 as well.
func (d *Daemon) localAuth(r *http.Request) (auth.Principal, bool, error) {
	lp, ok := r.Context().Value(localPeerKey{}).(localPeer)
	if !ok {
		return auth.Anonymous, false, nil
	}
	if lp.uid != 0 && lp.uid != os.Geteuid() {
		return auth.Anonymous, true, api.StatusErrorf(http.StatusForbidden, "the unix socket is for root only (you are uid %d)", lp.uid)
	}
	return auth.Principal{Kind: auth.Local, Name: fmt.Sprintf("uid=%d", lp.uid), Scope: auth.ScopeAdmin}, true, nil
}

// tokenAuth: "Authorization: Bearer gwt_...", over TLS.
func (d *Daemon) tokenAuth(r *http.Request) (auth.Principal, bool, error) {
	h := r.Header.Get("Authorization")
	if h == "" || r.TLS == nil {
		return auth.Anonymous, false, nil
	}
	scheme, secret, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return auth.Anonymous, true, api.StatusErrorf(http.StatusUnauthorized, "Authorization: want \"Bearer TOKEN\"")
	}
	p, err := d.mon.tokens.Verify(r.Context(), strings.TrimSpace(secret))
	if errors.Is(err, auth.ErrBadToken) {
		return auth.Anonymous, true, api.StatusErrorf(http.StatusUnauthorized, "the bearer token is invalid or revoked")
	}
	return p, true, err
}

// certAuth: a client certificate this daemon's CA signed. Its OU may
// limit it to read ("godwit" certificates without one are admin).
func (d *Daemon) certAuth(r *http.Request) (auth.Principal, bool, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || d.tlsID == nil {
		return auth.Anonymous, false, nil
	}
	for _, chain := range r.TLS.VerifiedChains {
		if !chain[len(chain)-1].Equal(d.tlsID.CA) {
			continue
		}
		return auth.Principal{Kind: auth.Cert, Name: chain[0].Subject.CommonName, Scope: certScope(chain[0])}, true, nil
	}
	return auth.Anonymous, false, nil
}

// peerAuth: another host's daemon, with a certificate from the CA of a
// peer it joined.
func (d *Daemon) peerAuth(r *http.Request) (auth.Principal, bool, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || d.peers == nil {
		return auth.Anonymous, false, nil
	}
	if name := d.peers.Identify(r.TLS.VerifiedChains[0]); name != "" {
		return auth.Principal{Kind: auth.Peer, Name: name, Scope: auth.ScopePeer}, true, nil
	}
	return auth.Anonymous, false, nil
}

// requestKey carries the *http.Request, for handlers that stream a body.
type requestKey struct{}

// callerPeer is the peer that sent a peer request ("" otherwise).
func callerPeer(ctx context.Context) string {
	if p := principalOf(ctx); p.Kind == auth.Peer {
		return p.Name
	}
	return ""
}

func certScope(c *x509.Certificate) string {
	for _, ou := range c.Subject.OrganizationalUnit {
		if ou == auth.ScopeRead || ou == auth.ScopeAdmin {
			return ou
		}
	}
	return auth.ScopeAdmin
}

// authenticate returns the request's principal; Anonymous when nothing
// applies.
func (d *Daemon) authenticate(r *http.Request) (auth.Principal, error) {
	for _, a := range d.authenticators() {
		p, ok, err := a(r)
		if ok || err != nil {
			return p, err
		}
	}
	return auth.Anonymous, nil
}

// withAuth authenticates every request: anonymous ones reach only the
// public routes (health probes, a peer join, the web page's files and
// login); the rest get 401. Change requests from another site's page are
// refused first (crossSite).
func (d *Daemon) withAuth(public map[string]bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := infoOf(r.Context())
		err := crossSite(r)
		var p auth.Principal
		if err == nil {
			p, err = d.authenticate(r)
		}
		if err == nil && p.Kind == "" && !public[r.URL.Path] && !publicPath(r.URL.Path) {
			err = api.StatusErrorf(http.StatusUnauthorized, "authentication required: a client certificate from this daemon's CA, or a bearer token (godwit token create)")
		}
		if err != nil {
			if api.Status(err) == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="godwit"`)
			}
			writeError(w, err)
			return
		}
		ri.principal = p
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestKey{}, r)))
	})
}

// checkAccess is the huma middleware that enforces each route's access
// level against the caller's scope.
// expect, when set, hears of every allowed change request on a VM.
func checkAccess(a huma.API, expect func(vm string)) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		op := ctx.Operation()
		access, _ := op.Metadata["access"].(Access)
		if ri := infoOf(ctx.Context()); ri != nil {
			ri.route = op.OperationID
		}
		p := principalOf(ctx.Context())
		if !p.Allows(string(access)) {
			_ = huma.WriteErr(a, ctx, http.StatusForbidden,
				fmt.Sprintf("%s (scope %s) may not %s %s: it needs the %s scope", p, orNone(p.Scope), op.Method, ctx.URL().Path, access))
			return
		}
		if expect != nil && op.Method != http.MethodGet && strings.HasPrefix(op.Path, "/v1/vms/{name}") {
			// godwit is asked to act on this VM: a stop now is no surprise.
			expect(ctx.Param("name"))
		}
		next(ctx)
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// rawRoute wraps a plain http.Handler (metrics) with an access check.
func rawRoute(access Access, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := principalOf(r.Context())
		if !p.Allows(string(access)) {
			writeError(w, api.StatusErrorf(http.StatusForbidden, "%s (scope %s) may not %s %s: it needs the %s scope", p, orNone(p.Scope), r.Method, r.URL.Path, access))
			return
		}
		h.ServeHTTP(w, r)
	})
}
