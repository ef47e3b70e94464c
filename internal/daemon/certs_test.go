package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
)

// Bad names and scopes get a 400 that names the field; nothing is issued.
func TestCreateCertValidation(t *testing.T) {
	td := serveTLS(t)
	for _, c := range []struct{ body, field string }{
		{`{"name": "", "scope": "read"}`, "name"},
		{`{"name": "../etc", "scope": "read"}`, "name"},
		{`{"name": "a/b", "scope": "read"}`, "name"},
		{`{"name": "two words", "scope": "read"}`, "name"},
		{`{"name": "-dash", "scope": "read"}`, "name"},
		{`{"name": ".hidden", "scope": "read"}`, "name"},
		{`{"name": "x@y", "scope": "read"}`, "name"},
		{`{"name": "` + strings.Repeat("a", 65) + `", "scope": "read"}`, "name"},
		{`{"scope": "read"}`, "name"},
		{`{"name": "ok", "scope": "root"}`, "scope"},
		{`{"name": "ok", "scope": ""}`, "scope"},
		{`{"name": "ok"}`, "scope"},
		{`{"name": "admin", "scope": "read"}`, "name"},
		{`{"name": "Admin", "scope": "admin"}`, "name"},
	} {
		status, h, body := td.do("POST", "/v1/certs", c.body)
		wantError(t, c.body, status, h, body, 400, c.field)
	}
	// The checks themselves, without huma's schema in front.
	for _, r := range []api.CertRequest{{Name: "a b", Scope: "read"}, {Name: strings.Repeat("x", 65), Scope: "admin"}} {
		if err := validCertRequest(r); api.Status(err) != 400 || !strings.Contains(err.Error(), "name:") {
			t.Errorf("%+v: %v, want a 400 about name", r, err)
		}
	}
	if err := validCertRequest(api.CertRequest{Name: "ok", Scope: "Admin"}); api.Status(err) != 400 || !strings.Contains(err.Error(), "scope:") {
		t.Errorf("scope Admin: %v, want a 400 about scope", err)
	}
	for _, name := range []string{"a", "laptop-01", "ci_bot.example", strings.Repeat("x", 64)} {
		if err := validCertRequest(api.CertRequest{Name: name, Scope: "read"}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A daemon without --listen has no CA: 409 with the way out.
func TestCreateCertNeedsListen(t *testing.T) {
	td := newDaemon(t)
	_, err := td.c.CreateCert(context.Background(), api.CertRequest{Name: "laptop", Scope: "read"})
	if api.Status(err) != http.StatusConflict || !strings.Contains(err.Error(), "--listen") {
		t.Fatalf("CreateCert without --listen: %v, want 409 naming --listen", err)
	}
}

// An issued certificate works with its scope, only admins may issue one,
// the daemon keeps no copy of the key, and the audit log has the request
// but not the key.
func TestCreateCert(t *testing.T) {
	td := serveTLS(t)
	ctx := context.Background()
	td.createVM(td.spec("web1"), false)

	issue := func(name, scope string) (api.NewCert, *http.Client) {
		t.Helper()
		nc, err := td.c.CreateCert(ctx, api.CertRequest{Name: name, Scope: scope})
		if err != nil {
			t.Fatalf("CreateCert %s: %v", name, err)
		}
		if nc.Name != name || nc.Scope != scope || nc.Serial == "" || len(nc.Fingerprint) != 64 || time.Until(nc.NotAfter) < 300*24*time.Hour || !strings.HasPrefix(nc.URL, "https://") {
			t.Fatalf("CreateCert %s: %+v", name, nc)
		}
		pair, err := tls.X509KeyPair([]byte(nc.Cert), []byte(nc.Key))
		if err != nil {
			t.Fatalf("cert and key of %s: %v", name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(nc.CA)) {
			t.Fatalf("CA of %s: %q", name, nc.CA)
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: []tls.Certificate{pair}}
		return nc, &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	reader, rc := issue("laptop", "read")
	_, ac := issue("ci", "admin")

	if status, _, body := td.call(rc, "", "GET", "/v1/vms", ""); status != 200 || !strings.Contains(string(body), "web1") {
		t.Fatalf("read certificate list: %d %s", status, body)
	}
	status, h, body := td.call(rc, "", "POST", "/v1/vms/web1/start", "")
	wantError(t, "read certificate start", status, h, body, 403, "cert:laptop", "admin")
	status, h, body = td.call(rc, "", "POST", "/v1/certs", `{"name": "evil", "scope": "admin"}`)
	wantError(t, "read certificate issues a certificate", status, h, body, 403, "admin")
	status, h, body = td.call(td.httpsClient(""), "", "POST", "/v1/certs", `{"name": "evil", "scope": "admin"}`)
	wantError(t, "anonymous issues a certificate", status, h, body, 401)
	if status, _, body := td.call(ac, "", "POST", "/v1/vms/web1/start", ""); status != 202 {
		t.Fatalf("admin certificate start: %d %s", status, body)
	}
	// An admin certificate may issue certificates too.
	if status, _, body := td.call(ac, "", "POST", "/v1/certs", `{"name": "ci-2", "scope": "read"}`); status != 200 || !strings.Contains(string(body), "PRIVATE KEY") {
		t.Fatalf("admin certificate issues a certificate: %d %s", status, body)
	}

	// No file under the state dir holds the key (nor, the certificate:
	// nothing was written for it).
	keyBody := pemBody(reader.Key)
	certBody := pemBody(reader.Cert)
	err := filepath.WalkDir(td.stateDir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(keyBody)) || bytes.Contains(b, []byte(certBody)) {
			t.Errorf("%s holds the issued certificate or key", p)
		}
		if strings.Contains(filepath.Base(p), "laptop") {
			t.Errorf("%s left in the state dir", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	entries, err := td.c.Audit(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, fmt.Sprintf("%s %s %s %d", e.Principal, e.Method, e.Path, e.Status))
	}
	all := strings.Join(got, "\n")
	for _, w := range []string{
		fmt.Sprintf("local:uid=%d POST /v1/certs 200", os.Geteuid()),
		"cert:laptop POST /v1/certs 403",
		"anonymous POST /v1/certs 401",
		"cert:ci POST /v1/certs 200",
		"cert:ci POST /v1/vms/web1/start 202",
	} {
		if !strings.Contains(all, w) {
			t.Errorf("audit log lacks %q; has:\n%s", w, all)
		}
	}
	raw, err := os.ReadFile(td.d.auditPath())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("PRIVATE KEY")) || bytes.Contains(raw, []byte(keyBody)) {
		t.Fatal("the audit log holds a private key")
	}
}

// pemBody is the base64 part of a PEM block, on one line, long enough to
// be unique.
func pemBody(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[1]
}
