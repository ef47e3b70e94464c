package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TLSFiles is a mutual-TLS identity on disk, in the form etcd reads it:
// the CAs to trust, and a certificate with its key.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
}

// WriteMemberTLS writes into dir the identity of a cluster store member
// (an embedded etcd) on this host: member.crt and member.key, signed by
// this CA and valid both to serve and as a client (etcd members dial each
// other, and etcd checks a peer's client certificate against the address
// it comes from, so ips must hold every address this host uses to reach
// the others), and ca.crt, the CAs the member trusts: this one and
// trusted. etcd reads ca.crt only when the member starts. The certificate
// is kept while it covers names and ips and is far from expiry.
func (id *Identity) WriteMemberTLS(dir, commonName string, names []string, ips []net.IP, trusted ...*x509.Certificate) (TLSFiles, error) {
	f := TLSFiles{
		CAFile:   filepath.Join(dir, "ca.crt"),
		CertFile: filepath.Join(dir, "member.crt"),
		KeyFile:  filepath.Join(dir, "member.key"),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, err
	}
	if err := writeFileAtomic(f.CAFile, caBundle(id.CA, trusted), 0o644); err != nil {
		return f, err
	}
	if cur, _, err := loadPair(dir, "member"); err == nil && !id.mustReissue(cur, names, ips) {
		return f, nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return f, fmt.Errorf("member certificate in %s: %w", dir, err)
	}
	der, key, err := id.sign(subject(commonName), names, ips, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	if err != nil {
		return f, err
	}
	return f, writePair(dir, "member", der, key)
}

// mustReissue says whether a certificate no longer serves: it misses one
// of names or ips, is not this CA's, or expires within 30 days.
func (id *Identity) mustReissue(c *x509.Certificate, names []string, ips []net.IP) bool {
	return !covers(c, names, ips) || c.CheckSignatureFrom(id.CA) != nil || time.Until(c.NotAfter) < 30*24*time.Hour
}

// caBundle is own and extra in PEM, one after the other.
func caBundle(own *x509.Certificate, extra []*x509.Certificate) []byte {
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: own.Raw})
	for _, c := range extra {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// ClientConfig is the client side of these files: trust the CAs, present
// the certificate. TLS 1.3 only.
func (f TLSFiles) ClientConfig() (*tls.Config, error) {
	caPEM, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no certificate", f.CAFile)
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: []tls.Certificate{cert}}, nil
}
