package daemon

import (
	"context"
	"net/http"
	"regexp"
	"strings"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/auth"
	"github.com/godwit-project/godwit/internal/pki"
)

// certRoutes: client certificates from the daemon's CA, for admins only.
// Like token creation, issuing one lands in the audit log (every POST
// does); the key is never logged nor kept.
func (d *Daemon) certRoutes() []route {
	return []route{
		{Admin, op("create-cert", http.MethodPost, "/v1/certs", "Issue a client certificate for the TCP API (its key is shown once, never kept)", "security"), handle(d.createCert)},
	}
}

// certNameRE: a certificate's common name, safe as a file or directory name.
var certNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func validCertRequest(r api.CertRequest) error {
	if !certNameRE.MatchString(r.Name) {
		return api.BadRequest("name: %q must be 1-64 letters, digits or ._- (starting with a letter or digit)", r.Name)
	}
	if strings.EqualFold(r.Name, "admin") {
		// The daemon's own client certificate (STATE/tls/client.crt) is
		// "admin": a second one would be indistinguishable in the audit log.
		return api.BadRequest("name: %q is the daemon's own client certificate; pick another name", r.Name)
	}
	return auth.ValidScope(r.Scope)
}

func (d *Daemon) createCert(ctx context.Context, in *struct{ Body api.CertRequest }) (*struct{ Body api.NewCert }, error) {
	if err := validCertRequest(in.Body); err != nil {
		return nil, err
	}
	if d.tlsID == nil {
		return nil, api.Conflict("this daemon does not listen on TCP, so it has no CA and a client certificate would be of no use: start it with --listen ADDR:PORT")
	}
	cc, err := d.tlsID.NewClient(in.Body.Name, in.Body.Scope)
	if err != nil {
		return nil, err
	}
	fp := pki.Fingerprint(cc.Cert)
	d.log.Info("issued a client certificate", "name", in.Body.Name, "scope", in.Body.Scope,
		"serial", cc.Cert.SerialNumber.Text(16), "fingerprint", fp, "by", principalOf(ctx).String())
	return &struct{ Body api.NewCert }{api.NewCert{
		Name: in.Body.Name, Scope: in.Body.Scope,
		Serial: cc.Cert.SerialNumber.Text(16), Fingerprint: fp, NotAfter: cc.Cert.NotAfter.UTC(),
		URL: d.cfg.Advertise, CA: d.tlsID.CAPEM(), Cert: string(cc.CertPEM), Key: string(cc.KeyPEM),
	}}, nil
}
