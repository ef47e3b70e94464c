package e2e

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/pki"
)

// --listen serves the API over TLS to holders of a client certificate from
// the daemon's CA, and to nobody else.
func TestListenTLS(t *testing.T) {
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
	if _, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: anon}}).Get(url + "/v1/vms"); err == nil {
		t.Fatal("a client without a certificate was served")
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
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr())
}
