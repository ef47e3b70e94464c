package pki

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServeOnlyToClientsOfTheCA(t *testing.T) {
	dir := t.TempDir()
	id, err := LoadOrCreate(dir, "h1", []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.key", "server.key", "client.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, st.Mode(), err)
		}
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = id.ServerTLS(nil)
	srv.StartTLS()
	defer srv.Close()

	cfg, err := ClientTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello admin" {
		t.Fatalf("got %q", b)
	}

	// Without a client certificate the handshake succeeds (the HTTP layer
	// decides), but there is no verified peer certificate.
	noCert := cfg.Clone()
	noCert.Certificates = nil
	srvAnon := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, fmt.Sprint(len(r.TLS.VerifiedChains)))
	}))
	srvAnon.TLS = id.ServerTLS(nil)
	srvAnon.StartTLS()
	defer srvAnon.Close()
	resp, err = (&http.Client{Transport: &http.Transport{TLSClientConfig: noCert}}).Get(srvAnon.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "0" {
		t.Fatalf("anonymous client had %s verified chains", b)
	}
	// With a certificate from another CA: refused.
	other := t.TempDir()
	if _, err := LoadOrCreate(other, "h2", nil, nil); err != nil {
		t.Fatal(err)
	}
	foreign, _ := tls.LoadX509KeyPair(filepath.Join(other, "client.crt"), filepath.Join(other, "client.key"))
	bad := cfg.Clone()
	bad.Certificates = []tls.Certificate{foreign}
	if _, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: bad}}).Get(srv.URL); err == nil {
		t.Fatal("a client certificate from another CA was accepted")
	}
}

func TestReloadKeepsCAAndReissuesForNewAddress(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadOrCreate(dir, "h1", nil, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreate(dir, "h1", nil, []net.IP{net.ParseIP("10.77.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	if !a.CA.Equal(b.CA) {
		t.Fatal("the CA changed on reload")
	}
	leaf := b.Server.Leaf
	if leaf == nil || !covers(leaf, nil, []net.IP{net.ParseIP("10.77.0.1")}) {
		t.Fatal("the server certificate was not reissued for the new address")
	}
}

// A certificate issued with a scope carries it in its OU; ClientTLS works
// with only ca.crt (for clients with a bearer token).
func TestClientWithScopeAndCAOnly(t *testing.T) {
	dir := t.TempDir()
	id, err := LoadOrCreate(dir, "h1", []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := id.NewClient("grafana", "read")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.VerifiedChains) == 0 {
			io.WriteString(w, "anonymous")
			return
		}
		leaf := r.TLS.VerifiedChains[0][0]
		io.WriteString(w, leaf.Subject.CommonName+" "+strings.Join(leaf.Subject.OrganizationalUnit, ","))
	}))
	srv.TLS = id.ServerTLS(nil)
	srv.StartTLS()
	defer srv.Close()
	get := func(cfg *tls.Config) string {
		resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}).Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	cfg, err := ClientTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := tls.X509KeyPair(cc.CertPEM, cc.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	reader := cfg.Clone()
	reader.Certificates = []tls.Certificate{rc}
	if got := get(reader); got != "grafana read" {
		t.Fatalf("read-only certificate: %q", got)
	}
	caOnly := t.TempDir()
	ca, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err := os.WriteFile(filepath.Join(caOnly, "ca.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err = ClientTLS(caOnly)
	if err != nil || len(cfg.Certificates) != 0 {
		t.Fatalf("ClientTLS with only ca.crt: %v, %d certificates", err, len(cfg.Certificates))
	}
	if got := get(cfg); got != "anonymous" {
		t.Fatalf("CA-only client: %q", got)
	}
}

// NewClient signs a certificate with its scope and writes nothing: the key
// lives only in what it returns, and the pair works against the server.
func TestNewClientWritesNothing(t *testing.T) {
	dir := t.TempDir()
	id, err := LoadOrCreate(dir, "h1", []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(dir)
	cc, err := id.NewClient("laptop", "read")
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadDir(dir)
	if len(after) != len(before) {
		t.Fatalf("NewClient wrote files: %d entries before, %d after", len(before), len(after))
	}
	if cc.Cert.Subject.CommonName != "laptop" || strings.Join(cc.Cert.Subject.OrganizationalUnit, ",") != "read" {
		t.Fatalf("subject %v", cc.Cert.Subject)
	}
	if err := cc.Cert.CheckSignatureFrom(id.CA); err != nil {
		t.Fatalf("not signed by the CA: %v", err)
	}
	pair, err := tls.X509KeyPair(cc.CertPEM, cc.KeyPEM)
	if err != nil {
		t.Fatalf("the PEMs do not make a key pair: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.VerifiedChains) == 0 {
			io.WriteString(w, "anonymous")
			return
		}
		leaf := r.TLS.VerifiedChains[0][0]
		io.WriteString(w, leaf.Subject.CommonName+" "+strings.Join(leaf.Subject.OrganizationalUnit, ","))
	}))
	srv.TLS = id.ServerTLS(nil)
	srv.StartTLS()
	defer srv.Close()
	cfg, err := ClientTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "laptop read" {
		t.Fatalf("server saw %q, want \"laptop read\"", b)
	}
}
