package daemon

import (
	"context"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/auth"
	"github.com/godwit-project/godwit/internal/ops"
)

// Any host of a cluster serves the whole API: a request about a VM
// another host owns (its record is in that host's namespace), about an
// operation another host runs (its id ends in @HOST), or for another
// host's events, is forwarded to that host's daemon over the peers'
// mutual TLS, after this host checked the caller's access. The other
// host serves it for the caller, named in the headers below: hosts of a
// cluster trust each other with that (they share the store anyway). A
// forwarded request is never forwarded again.
const (
	headerForwardedBy = "X-Godwit-Forwarded-By"
	headerFor         = "X-Godwit-For"
	headerForScope    = "X-Godwit-For-Scope"
)

// forwardedAuth: a request a host of this host's cluster forwarded, for
// the principal that host authenticated.
func (d *Daemon) forwardedAuth(r *http.Request) (auth.Principal, bool, error) {
	by := r.Header.Get(headerForwardedBy)
	if by == "" || r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || d.peers == nil {
		return auth.Anonymous, false, nil
	}
	n := d.clusterNode()
	peer := d.peers.Identify(r.TLS.VerifiedChains[0])
	if n == nil || peer == "" || peer != by {
		return auth.Anonymous, false, nil
	}
	if _, ok := n.Host(peer); !ok {
		return auth.Anonymous, true, api.StatusErrorf(http.StatusForbidden, "host %s forwarded a request but is no host of this cluster", peer)
	}
	scope := r.Header.Get(headerForScope)
	if scope != auth.ScopeRead && scope != auth.ScopeAdmin {
		return auth.Anonymous, true, api.StatusErrorf(http.StatusForbidden, "a forwarded request for scope %q", scope)
	}
	return auth.Principal{Kind: auth.Forwarded, Name: r.Header.Get(headerFor) + " via " + peer, Scope: scope}, true, nil
}

// forward is the huma middleware that sends a request for another host
// to it; it runs after checkAccess.
func (d *Daemon) forward(ctx huma.Context, next func(huma.Context)) {
	n := d.clusterNode()
	r, w := humago.Unwrap(ctx)
	if n == nil || r.Header.Get(headerForwardedBy) != "" {
		next(ctx)
		return
	}
	host, err := d.ownerOf(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	if host == "" || host == d.cfg.Name {
		next(ctx)
		return
	}
	if h, ok := n.Host(host); ok && !h.Removed.IsZero() {
		d.serveForRemoved(ctx, w, host)
		return
	}
	p, err := d.proxyTo(r.Context(), host)
	if err != nil {
		writeError(w, err)
		return
	}
	r.Header.Del("Authorization") // this host's token is no good there
	who := principalOf(r.Context())
	r.Header.Set(headerForwardedBy, d.cfg.Name)
	r.Header.Set(headerFor, who.String())
	r.Header.Set(headerForScope, who.Scope)
	p.ServeHTTP(w, r)
}

// ownerOf names the host a request is for ("" or this host's name: this
// host serves it).
func (d *Daemon) ownerOf(ctx huma.Context) (string, error) {
	op := ctx.Operation()
	n := d.clusterNode()
	switch {
	case strings.HasPrefix(op.Path, "/v1/vms/{name}"):
		return n.Owner(ctx.Context(), ctx.Param("name"))
	case strings.HasPrefix(op.Path, "/v1/operations/{id}"):
		return ops.HostOf(ctx.Param("id")), nil
	case op.OperationID == "events" && ctx.Query("vm") != "":
		return n.Owner(ctx.Context(), ctx.Query("vm"))
	case op.OperationID == "events" || op.OperationID == "list-vms" || op.OperationID == "list-operations":
		return ctx.Query("host"), nil
	case op.OperationID == "drain-host":
		if h := ctx.Param("name"); h != "" {
			if _, ok := n.Host(h); ok {
				return h, nil
			}
		}
	case op.OperationID == "create-vm":
		// Pinned to a host of the cluster (an unknown one: 404 here).
		if h := ctx.Query("host"); h != "" {
			if _, ok := n.Host(h); ok {
				return h, nil
			}
		}
	}
	return "", nil
}

// forwardClient is a client of host's daemon that asks for this
// request's caller, as forwarding does: the host serves it for that
// caller (its scope), trusting this host as one of its cluster.
func (d *Daemon) forwardClient(ctx context.Context, host string) (*client.Client, error) {
	e, err := d.peers.Endpoint(ctx, host)
	if err != nil {
		return nil, api.StatusErrorf(http.StatusBadGateway, "forward to host %s: %w", host, err)
	}
	who := principalOf(ctx)
	hc := &http.Client{Transport: forwarding{base: &http.Transport{TLSClientConfig: e.TLS}, headers: http.Header{
		headerForwardedBy: {d.cfg.Name}, headerFor: {who.String()}, headerForScope: {who.Scope},
	}}}
	return client.New(client.Options{URL: e.URL, HTTPClient: hc})
}

// forwarding adds the forwarding headers to every request.
type forwarding struct {
	base    http.RoundTripper
	headers http.Header
}

func (f forwarding) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range f.headers {
		r.Header[k] = v
	}
	return f.base.RoundTrip(r)
}

// proxies keeps one reverse proxy per host (and its URL and CA), so that
// forwarded requests reuse their connections.
type proxies struct {
	mu sync.Mutex
	m  map[string]*httputil.ReverseProxy
}

// proxyTo is the reverse proxy to host's daemon.
func (d *Daemon) proxyTo(ctx context.Context, host string) (*httputil.ReverseProxy, error) {
	e, err := d.peers.Endpoint(ctx, host)
	if err != nil {
		return nil, api.StatusErrorf(http.StatusBadGateway, "forward to host %s: %w", host, err)
	}
	target, err := url.Parse(e.URL)
	if err != nil {
		return nil, err
	}
	key := host + " " + e.URL + " " + e.CA
	d.proxies.mu.Lock()
	defer d.proxies.mu.Unlock()
	if p := d.proxies.m[key]; p != nil {
		return p, nil
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
		},
		Transport:     &http.Transport{TLSClientConfig: e.TLS, MaxIdleConnsPerHost: 16},
		FlushInterval: -1, // console and event streams, long polls
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the caller went away
			}
			writeError(w, api.StatusErrorf(http.StatusBadGateway, "host %s, which this request is for, does not answer: %v", host, err))
		},
	}
	if d.proxies.m == nil {
		d.proxies.m = map[string]*httputil.ReverseProxy{}
	}
	d.proxies.m[key] = p
	return p, nil
}
