// Package peer is the trust between godwit daemons on different hosts.
// A host joins another with a one-time token printed there ('godwit host
// token'); the two then keep each other's CA certificate and talk over
// mutual TLS: each presents a certificate from its own CA, which the other
// trusts for the "peer" scope. peer owns the peer records and join tokens,
// and hands out API clients for peers; it does not migrate anything.
package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/pki"
	"github.com/godwit-project/godwit/internal/store"
)

const (
	peersBucket  = "peers"
	tokensBucket = "jointokens"
	tokenPrefix  = "gwj1"
	// DefaultTokenTTL is how long a join token is valid.
	DefaultTokenTTL = 10 * time.Minute
)

// record is a peer as stored.
type record struct {
	Name    string    `json:"name"`
	URL     string    `json:"url"`
	CA      string    `json:"ca"`
	AddedAt time.Time `json:"addedAt"`
}

// tokenRecord is an unused join token, kept as a hash.
type tokenRecord struct {
	ExpiresAt time.Time `json:"expiresAt"`
}

// Self is what this daemon says about itself to peers.
type Self struct {
	Name string
	// URL is where peers reach this daemon ("" when it has no TCP listener).
	URL string
	// Identity is the daemon's CA and certificates (nil without a listener).
	Identity *pki.Identity
}

// Service keeps peers and join tokens.
type Service struct {
	store store.Store
	self  Self
	log   *slog.Logger

	mu  sync.RWMutex
	cas map[string]*x509.Certificate // peer name -> CA, the trust set
	// onChange runs after the trust set changed (a join or a removal).
	onChange func()
}

// OnChange registers f to run after a peer is added or removed.
func (s *Service) OnChange(f func()) { s.onChange = f }

func (s *Service) changed() {
	if s.onChange != nil {
		s.onChange()
	}
}

// New returns the service; it trusts no peer until Load has read them
// (at start, or later when the store does not answer then).
func New(st store.Store, self Self, log *slog.Logger) *Service {
	return &Service{store: st, self: self, log: log, cas: map[string]*x509.Certificate{}}
}

// Load reads the peers' CAs from the store: the trust set.
func (s *Service) Load(ctx context.Context) error {
	recs, err := store.ListJSON[record](ctx, s.store, peersBucket)
	if err != nil {
		return err
	}
	cas := map[string]*x509.Certificate{}
	for _, r := range recs {
		ca, err := pki.ParseCertPEM(r.CA)
		if err != nil {
			s.log.Error("peer with an unreadable CA; ignored", "peer", r.Name, "err", err)
			continue
		}
		cas[r.Name] = ca
	}
	s.mu.Lock()
	s.cas = cas
	s.mu.Unlock()
	s.changed()
	return nil
}

// TrustedCAs are the peers' CAs, for the TLS server.
func (s *Service) TrustedCAs() []*x509.Certificate {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*x509.Certificate, 0, len(s.cas))
	for _, c := range s.cas {
		out = append(out, c)
	}
	return out
}

// Identify names the peer whose CA signed a verified client chain's root;
// "" when it is no peer's.
func (s *Service) Identify(chain []*x509.Certificate) string {
	if len(chain) == 0 {
		return ""
	}
	root := chain[len(chain)-1]
	s.mu.RLock()
	defer s.mu.RUnlock()
	for name, ca := range s.cas {
		if ca.Equal(root) {
			return name
		}
	}
	return ""
}

func (s *Service) needTCP() error {
	if s.self.Identity == nil || s.self.URL == "" {
		return api.Conflict("this daemon does not listen on TCP, so no other host can reach it: start it with --listen ADDR:PORT (and --advertise URL if ADDR is not the address peers use)")
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// CreateToken makes a one-time join token. It embeds the fingerprint of
// this daemon's CA, so the joining host can check it talks to the right
// daemon before sending anything.
func (s *Service) CreateToken(ctx context.Context, ttl time.Duration) (api.JoinToken, error) {
	if err := s.needTCP(); err != nil {
		return api.JoinToken{}, err
	}
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	if ttl > 24*time.Hour {
		return api.JoinToken{}, api.BadRequest("ttlSeconds: at most a day")
	}
	var secret [24]byte
	_, _ = rand.Read(secret[:])
	fp := pki.Fingerprint(s.self.Identity.CA)
	tok := tokenPrefix + "." + base64.RawURLEncoding.EncodeToString(secret[:]) + "." + fp
	exp := time.Now().Add(ttl).UTC()
	if err := store.PutJSON(ctx, s.store, tokensBucket, hashSecret(secret[:]), tokenRecord{ExpiresAt: exp}); err != nil {
		return api.JoinToken{}, err
	}
	return api.JoinToken{Token: tok, ExpiresAt: exp}, nil
}

func hashSecret(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// parseToken splits a token into its secret and the CA fingerprint.
func parseToken(tok string) (secret []byte, fingerprint string, err error) {
	parts := strings.Split(strings.TrimSpace(tok), ".")
	if len(parts) != 3 || parts[0] != tokenPrefix || len(parts[2]) != 64 {
		return nil, "", api.BadRequest("token: not a godwit join token (get one with 'godwit host token' on the other host)")
	}
	secret, err = base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || len(secret) != 24 {
		return nil, "", api.BadRequest("token: damaged (copy it again from 'godwit host token')")
	}
	return secret, parts[2], nil
}

// Join is the issuing side: a host presents a token and its CA. The token
// is spent whatever happens next.
func (s *Service) Join(ctx context.Context, req api.PeerJoin) (api.PeerJoined, error) {
	if err := s.needTCP(); err != nil {
		return api.PeerJoined{}, err
	}
	secret, fp, err := parseToken(req.Token)
	if err != nil {
		return api.PeerJoined{}, err
	}
	if subtle.ConstantTimeCompare([]byte(fp), []byte(pki.Fingerprint(s.self.Identity.CA))) != 1 {
		return api.PeerJoined{}, api.StatusErrorf(http.StatusForbidden, "token: issued by another host")
	}
	key := hashSecret(secret)
	tr, err := store.GetJSON[tokenRecord](ctx, s.store, tokensBucket, key)
	if errors.Is(err, store.ErrNotFound) {
		return api.PeerJoined{}, api.StatusErrorf(http.StatusForbidden, "token: unknown or already used (tokens work once)")
	}
	if err != nil {
		return api.PeerJoined{}, err
	}
	if err := s.store.Delete(ctx, tokensBucket, key); err != nil {
		return api.PeerJoined{}, err
	}
	if time.Now().After(tr.ExpiresAt) {
		return api.PeerJoined{}, api.StatusErrorf(http.StatusForbidden, "token: expired at %s", tr.ExpiresAt.Format(time.RFC3339))
	}
	if err := validPeer(req.Name, req.URL); err != nil {
		return api.PeerJoined{}, err
	}
	if req.Name == s.self.Name {
		return api.PeerJoined{}, api.Conflict("name: %s is this host's own name", req.Name)
	}
	ca, err := pki.ParseCertPEM(req.CA)
	if err != nil || !ca.IsCA {
		return api.PeerJoined{}, api.BadRequest("ca: not a CA certificate")
	}
	if err := s.save(ctx, record{Name: req.Name, URL: req.URL, CA: req.CA, AddedAt: time.Now().UTC()}, ca); err != nil {
		return api.PeerJoined{}, err
	}
	s.log.Info("host joined", "peer", req.Name, "url", req.URL)
	return api.PeerJoined{Name: s.self.Name, URL: s.self.URL, CA: s.self.Identity.CAPEM()}, nil
}

func validPeer(name, rawURL string) error {
	if !nameRE.MatchString(name) {
		return api.BadRequest("name: %q must be 1-63 letters, digits, '.', '_' or '-'", name)
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" && u.Path != "/" {
		return api.BadRequest("url: %q is not https://HOST:PORT", rawURL)
	}
	return nil
}

func (s *Service) save(ctx context.Context, r record, ca *x509.Certificate) error {
	if err := store.PutJSON(ctx, s.store, peersBucket, r.Name, r); err != nil {
		return err
	}
	s.mu.Lock()
	s.cas[r.Name] = ca
	s.mu.Unlock()
	s.changed()
	return nil
}

// Add joins the host at add.URL with its token: the joining side.
func (s *Service) Add(ctx context.Context, add api.PeerAdd) (api.Peer, error) {
	if err := s.needTCP(); err != nil {
		return api.Peer{}, err
	}
	if err := validPeer(add.Name, add.URL); err != nil {
		return api.Peer{}, err
	}
	if add.Name == s.self.Name {
		return api.Peer{}, api.BadRequest("name: %s is this host's own name", add.Name)
	}
	if _, err := store.GetJSON[record](ctx, s.store, peersBucket, add.Name); err == nil {
		return api.Peer{}, api.Conflict("host %s is already a peer (godwit host remove %s first to join it again)", add.Name, add.Name)
	}
	body := api.PeerJoin{Token: add.Token, Name: s.self.Name, URL: s.self.URL, CA: s.self.Identity.CAPEM()}
	var joined api.PeerJoined
	serverCA, err := s.Call(ctx, add.URL, add.Token, "/v1/peer/join", body, &joined)
	if err != nil {
		return api.Peer{}, err
	}
	if joined.Name != add.Name {
		// The other side stored us already; it is still the right host
		// (its CA matched the token), only named differently.
		return api.Peer{}, api.Conflict("the host at %s calls itself %s, not %s; add it under that name (it now knows this host: remove it there first)", add.URL, joined.Name, add.Name)
	}
	rec := record{Name: add.Name, URL: add.URL, CA: joined.CA, AddedAt: time.Now().UTC()}
	if err := s.save(ctx, rec, serverCA); err != nil {
		return api.Peer{}, err
	}
	s.log.Info("joined host", "peer", add.Name, "url", add.URL)
	return api.Peer{Name: rec.Name, URL: rec.URL, AddedAt: rec.AddedAt}, nil
}

// Call posts in to path on the host at rawURL, which must prove it holds
// the CA the token names (trust on first use, pinned by the token), and
// decodes its answer into out. It returns that CA. It is how a host joins
// another: as a peer (Add), or into its cluster.
func (s *Service) Call(ctx context.Context, rawURL, token, path string, in, out any) (*x509.Certificate, error) {
	_, fp, err := parseToken(token)
	if err != nil {
		return nil, err
	}
	var serverCA *x509.Certificate
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // verified below against the pinned CA
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) < 2 {
				return errors.New("the host did not send its CA certificate")
			}
			ca, err := x509.ParseCertificate(raw[len(raw)-1])
			if err != nil {
				return err
			}
			if pki.Fingerprint(ca) != fp {
				return errors.New("the host's CA is not the one the token names (wrong URL, or someone in between)")
			}
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			if err := leaf.CheckSignatureFrom(ca); err != nil {
				return fmt.Errorf("the host's certificate is not signed by its CA: %w", err)
			}
			serverCA = ca
			return nil
		},
	}
	body, _ := json.Marshal(in)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(rawURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, api.StatusErrorf(http.StatusBadGateway, "cannot reach the host at %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var se api.StatusError
		if json.Unmarshal(b, &se) == nil && se.Message != "" {
			return nil, api.StatusErrorf(resp.StatusCode, "the host at %s refused: %s", rawURL, se.Message)
		}
		return nil, api.StatusErrorf(http.StatusBadGateway, "the host at %s answered %s", rawURL, resp.Status)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("answer from %s: %w", rawURL, err)
	}
	return serverCA, nil
}

// Trust records name at rawURL, with its CA (PEM), as a peer, unless it
// is one already with that URL and CA: hosts of a cluster trust each
// other through the cluster's registry, without a token each.
func (s *Service) Trust(ctx context.Context, name, rawURL, caPEM string) error {
	if name == s.self.Name {
		return nil
	}
	if err := validPeer(name, rawURL); err != nil {
		return err
	}
	ca, err := pki.ParseCertPEM(caPEM)
	if err != nil || !ca.IsCA {
		return api.BadRequest("ca of %s: not a CA certificate", name)
	}
	if r, err := store.GetJSON[record](ctx, s.store, peersBucket, name); err == nil && r.URL == rawURL && r.CA == caPEM {
		s.mu.Lock()
		s.cas[name] = ca
		s.mu.Unlock()
		return nil
	}
	return s.save(ctx, record{Name: name, URL: rawURL, CA: caPEM, AddedAt: time.Now().UTC()}, ca)
}

// Remove forgets a peer (on this side only).
func (s *Service) Remove(ctx context.Context, name string) error {
	if err := s.store.Delete(ctx, peersBucket, name); errors.Is(err, store.ErrNotFound) {
		return api.NotFound("host %s is not a peer", name)
	} else if err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.cas, name)
	s.mu.Unlock()
	s.changed()
	return nil
}

// Names lists the peers' names.
func (s *Service) Names(ctx context.Context) ([]string, error) {
	recs, err := store.ListJSON[record](ctx, s.store, peersBucket)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Name)
	}
	return out, nil
}

// List returns the peers, each asked for its host facts (in parallel, each
// bounded by timeout).
func (s *Service) List(ctx context.Context, timeout time.Duration) ([]api.Peer, error) {
	recs, err := store.ListJSON[record](ctx, s.store, peersBucket)
	if err != nil {
		return nil, err
	}
	out := make([]api.Peer, len(recs))
	var wg sync.WaitGroup
	for i, r := range recs {
		out[i] = api.Peer{Name: r.Name, URL: r.URL, AddedAt: r.AddedAt}
		wg.Add(1)
		go func(p *api.Peer) {
			defer wg.Done()
			c, err := s.Client(ctx, p.Name)
			if err != nil {
				p.Error = err.Error()
				return
			}
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			h, err := c.Host(cctx)
			if err != nil {
				p.Error = err.Error()
				return
			}
			p.Reachable, p.Host = true, &h
		}(&out[i])
	}
	wg.Wait()
	return out, nil
}

// Client is an API client for a peer, over mutual TLS.
func (s *Service) Client(ctx context.Context, name string) (*client.Client, error) {
	e, err := s.Endpoint(ctx, name)
	if err != nil {
		return nil, err
	}
	return client.New(client.Options{URL: e.URL, TLS: e.TLS})
}

// Endpoint is where a peer's API answers and how to call it.
type Endpoint struct {
	URL string
	// TLS is the mutual TLS to call it with; CA the fingerprint of the
	// peer's CA it trusts.
	TLS *tls.Config
	CA  string
}

// Endpoint says how to reach a peer (for a client, or a proxy that
// forwards requests to it).
func (s *Service) Endpoint(ctx context.Context, name string) (Endpoint, error) {
	r, err := store.GetJSON[record](ctx, s.store, peersBucket, name)
	if errors.Is(err, store.ErrNotFound) {
		return Endpoint{}, api.NotFound("host %s is not a peer of this host (godwit host list; godwit host add)", name)
	}
	if err != nil {
		return Endpoint{}, err
	}
	if s.self.Identity == nil {
		return Endpoint{}, s.needTCP()
	}
	ca, err := pki.ParseCertPEM(r.CA)
	if err != nil {
		return Endpoint{}, fmt.Errorf("peer %s: %w", name, err)
	}
	cfg, err := s.self.Identity.PeerClientTLS(ca)
	if err != nil {
		return Endpoint{}, err
	}
	return Endpoint{URL: r.URL, TLS: cfg, CA: pki.Fingerprint(ca)}, nil
}
