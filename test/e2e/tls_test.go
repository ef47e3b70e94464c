package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/pki"
)

// --listen serves the API over TLS to holders of a client certificate from
// the daemon's CA or of a token, and to nobody else.
func TestListenTLS(t *testing.T) {
	concurrent(t)
	addr := freeAddr(t)
	d := StartDaemon(t, "--listen", addr)
	tlsDir := filepath.Join(d.Dir, "state", "tls")
	url := "https://" + addr

	name := "e2e-tls-" + uniq()
	d.createVM(guestSpec(t, name), false)
	out, errOut, code := d.CLI("--host", url, "--tls-dir", tlsDir, "vm", "list")
	if code != 0 || !strings.Contains(out, name) {
		t.Fatalf("vm list over TLS: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := d.CLI("--host", url, "vm", "list"); code != 1 || !strings.Contains(errOut, "--tls-dir") {
		t.Fatalf("without --tls-dir: exit %d, %q", code, errOut)
	}

	// Plain HTTP gets nothing; TLS without a client certificate is refused.
	hc := &http.Client{Timeout: 5 * time.Second}
	if resp, err := hc.Get("http://" + addr + "/v1/vms"); err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP was served")
	}
	cfg, err := pki.ClientTLS(tlsDir)
	if err != nil {
		t.Fatal(err)
	}
	anon := cfg.Clone()
	anon.Certificates = nil
	if resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: anon}}).Get(url + "/v1/vms"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a client without a certificate or token: %d, want 401", resp.StatusCode)
		}
	}
	// A certificate from another daemon's CA is refused too.
	other := StartDaemon(t, "--listen", freeAddr(t))
	otherCfg, err := pki.ClientTLS(filepath.Join(other.Dir, "state", "tls"))
	if err != nil {
		t.Fatal(err)
	}
	mixed := cfg.Clone()
	mixed.Certificates = otherCfg.Certificates
	c, err := client.New(client.Options{URL: url, TLS: mixed})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListVMs(ctxT(t, 10*time.Second)); err == nil {
		t.Fatal("a certificate from another CA was accepted")
	}
	// The Go client with the right credentials works, of course.
	c, _ = client.New(client.Options{URL: url, TLS: cfg})
	if _, err := c.GetVM(ctxT(t, 10*time.Second), name); err != nil {
		t.Fatal(err)
	}

	// A read-only token with only the CA's certificate: reads, cannot start.
	secret := strings.TrimSpace(d.MustCLI("token", "create", "--name", "e2e-reader", "--scope", "read", "-q"))
	caOnly := filepath.Join(d.Dir, "ca-only")
	if err := os.MkdirAll(caOnly, 0o700); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(tlsDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(caOnly, "ca.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	remote := []string{"--host", url, "--tls-dir", caOnly, "--token", secret}
	if out, errOut, code := d.CLI(append(remote, "vm", "list")...); code != 0 || !strings.Contains(out, name) {
		t.Fatalf("vm list with a read token: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := d.CLI(append(remote, "vm", "start", name)...); code != 1 || !strings.Contains(errOut, "admin") {
		t.Fatalf("vm start with a read token: exit %d\n%s%s", code, out, errOut)
	}
	if v, err := d.C.GetVM(ctxT(t, 10*time.Second), name); err != nil || v.State != "stopped" {
		t.Fatalf("after a refused start: %+v, %v", v.State, err)
	}
	d.MustCLI("token", "revoke", "e2e-reader")
	if _, errOut, code := d.CLI(append(remote, "vm", "list")...); code != 1 || !strings.Contains(errOut, "revoked") {
		t.Fatalf("vm list with a revoked token: exit %d %s", code, errOut)
	}
	audit := d.MustCLI("audit", "-o", "json")
	for _, w := range []string{`"principal": "token:e2e-reader"`, `"status": 403`, `"path": "/v1/tokens"`} {
		if !strings.Contains(audit, w) {
			t.Errorf("godwit audit lacks %s:\n%s", w, audit)
		}
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr())
}
