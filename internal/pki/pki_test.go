package pki

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The TLS layer lets a client without a certificate through (it may hold
// a bearer token, which the HTTP layer checks) but refuses a certificate
// from another CA during the handshake.
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
		if len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "no certificate", http.StatusUnauthorized)
			return
		}
		leaf := r.TLS.VerifiedChains[0][0]
		io.WriteString(w, "hello "+leaf.Subject.CommonName+" "+strings.Join(leaf.Subject.OrganizationalUnit, ","))
	}))
	srv.TLS = id.ServerTLS()
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
	if string(b) != "hello admin " {
		t.Fatalf("got %q", b)
	}

	// Without a client certificate: the handshake works, the certificate
	// is simply not there.
	noCert := cfg.Clone()
	noCert.Certificates = nil
	resp, err = (&http.Client{Transport: &http.Transport{TLSClientConfig: noCert}}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a certificate: %d, want the handler's 401", resp.StatusCode)
	}
	// A certificate issued with a scope carries it in its OU.
	if err := id.IssueClient("reader", "grafana", "read"); err != nil {
		t.Fatal(err)
	}
	rc, err := tls.LoadX509KeyPair(filepath.Join(dir, "reader.crt"), filepath.Join(dir, "reader.key"))
	if err != nil {
		t.Fatal(err)
	}
	reader := cfg.Clone()
	reader.Certificates = []tls.Certificate{rc}
	resp, err = (&http.Client{Transport: &http.Transport{TLSClientConfig: reader}}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello grafana read" {
		t.Fatalf("read-only certificate: got %q", b)
	}
	// With a certificate from another CA: refused.
	other := t.TempDir()
	if _, err := LoadOrCreate(other, "h2", nil, nil); err != nil {
		t.Fatal(err)
	}
	foreign, _ := tls.LoadX509KeyPair(filepath.Join(other, "client.crt"), filepath.Join(other, "client.key"))
	bad := cfg.Clone()
	bad.Certificates = []tls.Certificate{foreign}
	// (Go's client sends no certificate that the server's CA list does not
	// name, so this ends as a request without one.)
	if resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: bad}}).Get(srv.URL); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a client certificate from another CA: %d, want 401", resp.StatusCode)
		}
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
