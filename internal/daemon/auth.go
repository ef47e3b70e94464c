package daemon

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/godwit-project/godwit/api"
)

// More access levels (Read and Admin are in routes.go).
const (
	// Peer routes are called by other hosts' daemons (migration phases).
	Peer Access = "peer"
	// Public routes need no credentials (a host joining with a token).
	Public Access = "public"
)

// principal is who sent a request.
type principal struct {
	kind string // local, cert, peer or anonymous
	name string
}

// The unix socket is root-only, so a caller there is root.
func (p principal) allows(a Access) bool {
	switch a {
	case Public:
		return true
	case Read:
		return p.kind == "local" || p.kind == "cert" || p.kind == "peer"
	case Admin:
		return p.kind == "local" || p.kind == "cert"
	case Peer:
		return p.kind == "peer"
	}
	return false
}

type principalKey struct{}

// requestKey carries the *http.Request, for handlers that stream a body.
type requestKey struct{}

// principalOf says who sent r. The unix socket serves plain HTTP and the
// TCP listener only TLS, so r.TLS tells the two apart.
func (d *Daemon) principalOf(r *http.Request) principal {
	if r.TLS == nil {
		return principal{kind: "local", name: "root"}
	}
	if len(r.TLS.VerifiedChains) > 0 && d.tlsID != nil {
		chain := r.TLS.VerifiedChains[0]
		if chain[len(chain)-1].Equal(d.tlsID.CA) {
			return principal{kind: "cert", name: chain[0].Subject.CommonName}
		}
		if name := d.peers.Identify(chain); name != "" {
			return principal{kind: "peer", name: name}
		}
	}
	return principal{kind: "anonymous"}
}

// authenticate refuses anonymous TCP callers everything but the join, and
// records the principal for the handlers.
func (d *Daemon) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := d.principalOf(r)
		if p.kind == "anonymous" && !(r.Method == http.MethodPost && r.URL.Path == "/v1/peer/join") {
			writeError(w, api.StatusErrorf(http.StatusUnauthorized, "a client certificate from this daemon's CA is required (godwit --tls-dir)"))
			return
		}
		ctx := context.WithValue(r.Context(), principalKey{}, p)
		r = r.WithContext(ctx)
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, requestKey{}, r)))
	})
}

// authorize checks the route's access level against the principal.
func (d *Daemon) authorize(a huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		access, _ := ctx.Operation().Metadata["access"].(Access)
		r, _ := humago.Unwrap(ctx)
		p, _ := r.Context().Value(principalKey{}).(principal)
		if !p.allows(access) {
			_ = huma.WriteErr(a, ctx, http.StatusForbidden, "this needs "+string(access)+" access, which "+p.kind+" "+p.name+" does not have")
			return
		}
		next(ctx)
	}
}

// callerPeer is the peer that sent a peer request ("" otherwise).
func callerPeer(ctx context.Context) string {
	if p, ok := ctx.Value(principalKey{}).(principal); ok && p.kind == "peer" {
		return p.name
	}
	return ""
}
