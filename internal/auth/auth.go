// Package auth owns who may call godwit's API: principals (the local root
// user on the unix socket, holders of a client certificate from the
// daemon's CA, bearer tokens, and later peer daemons), their scopes, and
// the token store, which keeps tokens only as hashes.
//
// It does not speak HTTP: internal/daemon finds the principal of a request
// and asks Allows whether it may call a route.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/store"
)

// Kind is how a principal proved who it is.
type Kind string

// Principal kinds.
const (
	// Local is a process on the daemon's unix socket (root only).
	Local Kind = "local"
	// Cert is a TCP client with a certificate from this daemon's CA.
	Cert Kind = "cert"
	// Token is a TCP client with a bearer token.
	Token Kind = "token"
	// Peer is another godwit daemon (mutual TLS with a trusted peer CA).
	Peer Kind = "peer"
	// Forwarded is a request another host of the cluster forwarded, for
	// the principal it authenticated (named "WHO via HOST", with WHO's
	// scope): hosts of a cluster trust each other with that.
	Forwarded Kind = "forwarded"
)

// Scopes. Read and Admin are api.ScopeRead and api.ScopeAdmin.
const (
	ScopeRead  = api.ScopeRead
	ScopeAdmin = api.ScopeAdmin
	// ScopePeer is what a peer daemon may do: read, and call the routes
	// marked for peers.
	ScopePeer = "peer"
)

// Access levels of routes, as internal/daemon marks them.
const (
	// AccessPublic routes answer anyone (health probes).
	AccessPublic = "public"
	AccessRead   = "read"
	AccessAdmin  = "admin"
	// AccessPeer routes are for peer daemons only.
	AccessPeer = "peer"
)

// Principal is who sent a request.
type Principal struct {
	Kind  Kind
	Name  string // uid=0, the certificate's common name, the token's name, the peer's name
	Scope string
}

// Anonymous is the principal of a request that proved nothing.
var Anonymous = Principal{}

// String names the principal for logs and the audit log: "token:ci".
func (p Principal) String() string {
	if p.Kind == "" {
		return "anonymous"
	}
	return string(p.Kind) + ":" + p.Name
}

// Allows reports whether the principal may call a route of access level
// access. Unknown levels are refused.
func (p Principal) Allows(access string) bool {
	switch access {
	case AccessPublic:
		return true
	case AccessRead:
		return p.Scope == ScopeRead || p.Scope == ScopeAdmin || p.Scope == ScopePeer
	case AccessAdmin:
		return p.Scope == ScopeAdmin
	case AccessPeer:
		// Only peers: the handlers act for the calling peer by name.
		return p.Scope == ScopePeer
	}
	return false
}

// ValidScope checks a scope a user asked for.
func ValidScope(s string) error {
	if s != ScopeRead && s != ScopeAdmin {
		return api.BadRequest("scope: %q is not read or admin", s)
	}
	return nil
}

const bucket = "tokens"

// tokenPrefix starts every token, so a leaked one is recognisable.
const tokenPrefix = "gwt_"

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// record is what the store keeps of a token: its hash, never the secret.
type record struct {
	api.Token
	Hash string `json:"hash"` // hex sha256 of the whole token
}

// Tokens creates, lists, revokes and checks bearer tokens.
type Tokens struct {
	store store.Store
	mu    sync.Mutex // serialises create and revoke (unique names)
	now   func() time.Time
}

// NewTokens returns the token store kept in s.
func NewTokens(s store.Store) *Tokens { return &Tokens{store: s, now: time.Now} }

// Create makes a token and returns it with its secret, which is not kept.
func (t *Tokens) Create(ctx context.Context, name, scope string) (api.NewToken, error) {
	if !nameRE.MatchString(name) {
		return api.NewToken{}, api.BadRequest("name: %q must be 1-64 letters, digits or ._@- (starting with a letter or digit)", name)
	}
	if err := ValidScope(scope); err != nil {
		return api.NewToken{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	list, err := t.List(ctx)
	if err != nil {
		return api.NewToken{}, err
	}
	for _, tk := range list {
		if tk.Name == name {
			return api.NewToken{}, api.Conflict("a token named %q exists (id %s); revoke it first or pick another name", name, tk.ID)
		}
	}
	var idb [4]byte
	var secret [32]byte
	_, _ = rand.Read(idb[:])
	_, _ = rand.Read(secret[:])
	id := hex.EncodeToString(idb[:])
	full := tokenPrefix + id + "_" + hex.EncodeToString(secret[:])
	rec := record{Token: api.Token{ID: id, Name: name, Scope: scope, CreatedAt: t.now().UTC()}, Hash: hash(full)}
	if err := store.PutJSON(ctx, t.store, bucket, id, rec); err != nil {
		return api.NewToken{}, err
	}
	return api.NewToken{Token: rec.Token, Secret: full}, nil
}

// List returns every token, by name.
func (t *Tokens) List(ctx context.Context) ([]api.Token, error) {
	recs, err := store.ListJSON[record](ctx, t.store, bucket)
	if err != nil {
		return nil, err
	}
	out := make([]api.Token, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Token)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Revoke deletes the token with this id or name.
func (t *Tokens) Revoke(ctx context.Context, idOrName string) (api.Token, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	list, err := t.List(ctx)
	if err != nil {
		return api.Token{}, err
	}
	for _, tk := range list {
		if tk.ID == idOrName || tk.Name == idOrName {
			if err := t.store.Delete(ctx, bucket, tk.ID); err != nil {
				return api.Token{}, err
			}
			return tk, nil
		}
	}
	return api.Token{}, api.NotFound("token %q not found (give its id or name)", idOrName)
}

// ErrBadToken is the error of a token that is malformed, unknown or revoked.
var ErrBadToken = errors.New("invalid or revoked token")

// Verify returns the principal of a bearer token.
func (t *Tokens) Verify(ctx context.Context, secret string) (Principal, error) {
	rest, ok := strings.CutPrefix(secret, tokenPrefix)
	if !ok {
		return Anonymous, ErrBadToken
	}
	id, _, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 8 {
		return Anonymous, ErrBadToken
	}
	rec, err := store.GetJSON[record](ctx, t.store, bucket, id)
	if errors.Is(err, store.ErrNotFound) {
		return Anonymous, ErrBadToken
	}
	if err != nil {
		return Anonymous, fmt.Errorf("check token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(rec.Hash), []byte(hash(secret))) != 1 {
		return Anonymous, ErrBadToken
	}
	return Principal{Kind: Token, Name: rec.Name, Scope: rec.Scope}, nil
}

// hash is the hex sha256 of a token. Tokens carry 256 random bits, so a
// fast hash is enough (no password stretching needed).
func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
