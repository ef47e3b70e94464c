// Package pki is a daemon's identity: a small certificate authority made on
// first start, the daemon's server certificate, and client certificates it
// issues. The TCP API is served only over TLS and only to clients holding a
// certificate from this CA (later: peers and tokens build on the same CA).
//
// Files in the directory (keys 0600):
//
//	ca.crt ca.key          the CA (10 years)
//	server.crt server.key  the daemon's TLS certificate, signed by the CA
//	client.crt client.key  an admin client certificate for the local root user
//	peer.crt peer.key      the certificate this daemon presents to its peers
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	certValidity = 2 * 365 * 24 * time.Hour
)

// Identity is a loaded CA with the daemon's server certificate.
type Identity struct {
	Dir    string
	CA     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	Server tls.Certificate
}

// LoadOrCreate loads the identity in dir, creating what is missing. The
// server certificate is reissued when it does not cover names and ips.
func LoadOrCreate(dir, commonName string, names []string, ips []net.IP) (*Identity, error) {
	id, err := LoadOrCreateCA(dir, commonName)
	if err != nil {
		return nil, err
	}
	srv, _, err := loadPair(dir, "server")
	if err != nil || id.mustReissue(srv, names, ips) {
		if _, _, err := id.issue("server", commonName, names, ips, x509.ExtKeyUsageServerAuth); err != nil {
			return nil, err
		}
	}
	if id.Server, err = tls.LoadX509KeyPair(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")); err != nil {
		return nil, err
	}
	// Send the CA along: a joining peer checks it against its token.
	id.Server.Certificate = append(id.Server.Certificate, id.CA.Raw)
	for name, cn := range map[string]string{"client": "admin", "peer": commonName} {
		if _, err := os.Stat(filepath.Join(dir, name+".crt")); errors.Is(err, os.ErrNotExist) {
			if _, _, err := id.issue(name, cn, nil, nil, x509.ExtKeyUsageClientAuth); err != nil {
				return nil, err
			}
		}
	}
	return id, nil
}

// CAPEM returns the CA certificate in PEM, to hand to a peer.
func (id *Identity) CAPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.CA.Raw}))
}

// Fingerprint is the SHA-256 of a certificate, hex.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// ParseCertPEM reads one PEM certificate.
func ParseCertPEM(s string) (*x509.Certificate, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

// PeerClientTLS is how this daemon calls a peer: it trusts only the peer's
// CA and presents its own peer certificate.
func (id *Identity) PeerClientTLS(peerCA *x509.Certificate) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(id.Dir, "peer.crt"), filepath.Join(id.Dir, "peer.key"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(peerCA)
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: []tls.Certificate{cert}}, nil
}

func covers(c *x509.Certificate, names []string, ips []net.IP) bool {
	for _, n := range names {
		if !slices.Contains(c.DNSNames, n) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// ServerTLS is the TLS config of the TCP API: TLS 1.3; a client
// certificate, when given, must come from this CA or from one of the CAs
// extra returns (the peers', read at each handshake). Whether a request
// without one is served is the HTTP layer's call (only a peer join is).
func (id *Identity) ServerTLS(extra func() []*x509.Certificate) *tls.Config {
	base := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Server},
		ClientAuth:   tls.VerifyClientCertIfGiven,
	}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		pool := x509.NewCertPool()
		pool.AddCert(id.CA)
		if extra != nil {
			for _, c := range extra() {
				pool.AddCert(c)
			}
		}
		c := base.Clone()
		c.GetConfigForClient = nil
		c.ClientCAs = pool
		return c, nil
	}
	return base
}

// ClientCert is a client certificate with its private key, in PEM.
type ClientCert struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// NewClient signs a client certificate for commonName whose
// OrganizationalUnit carries scope ("read" or "admin"). It writes nothing:
// the certificate and its key exist only in what it returns (for a remote
// user; the daemon keeps no copy of the key).
func (id *Identity) NewClient(commonName, scope string) (ClientCert, error) {
	der, key, err := id.sign(clientSubject(commonName, scope), nil, nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	if err != nil {
		return ClientCert{}, err
	}
	certPEM, keyPEM, err := encodePair(der, key)
	if err != nil {
		return ClientCert{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return ClientCert{}, err
	}
	return ClientCert{Cert: cert, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

func clientSubject(commonName, scope string) pkix.Name {
	return pkix.Name{CommonName: commonName, Organization: []string{"godwit"}, OrganizationalUnit: []string{scope}}
}

// ClientTLS reads ca.crt, and client.crt and client.key when present, from
// dir: what a client needs to call a daemon whose identity lives (or was
// copied) there. Without a client certificate the client must send a
// bearer token.
func ClientTLS(dir string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s/ca.crt holds no certificate", dir)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}
	if _, err := os.Stat(filepath.Join(dir, "client.crt")); errors.Is(err, os.ErrNotExist) {
		return cfg, nil
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"))
	if err != nil {
		return nil, err
	}
	cfg.Certificates = []tls.Certificate{cert}
	return cfg, nil
}

func createCA(dir, commonName string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "godwit CA " + commonName, Organization: []string{"godwit"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	if err := writePair(dir, "ca", der, key); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// issue signs a new certificate and writes it as NAME.crt and NAME.key.
func (id *Identity) issue(name, commonName string, dns []string, ips []net.IP, usage ...x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	return id.issueWith(name, subject(commonName), dns, ips, usage)
}

// subject names a certificate godwit issues.
func subject(commonName string) pkix.Name {
	return pkix.Name{CommonName: commonName, Organization: []string{"godwit"}}
}

func (id *Identity) issueWith(name string, subject pkix.Name, dns []string, ips []net.IP, usage []x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	der, key, err := id.sign(subject, dns, ips, usage)
	if err != nil {
		return nil, nil, err
	}
	if err := writePair(id.Dir, name, der, key); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// sign makes a key and a certificate for it signed by the CA (DER).
func (id *Identity) sign(subject pkix.Name, dns []string, ips []net.IP, usage []x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, id.CA, &key.PublicKey, id.caKey)
	if err != nil {
		return nil, nil, err
	}
	return der, key, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

func writePair(dir, name string, der []byte, key *ecdsa.PrivateKey) error {
	certPEM, keyPEM, err := encodePair(der, key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, name+".key"), keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, name+".crt"), certPEM, 0o644)
}

// encodePair returns a certificate and its key in PEM.
func encodePair(der []byte, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

func loadPair(dir, name string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(filepath.Join(dir, name+".crt"))
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(filepath.Join(dir, name+".key"))
	if err != nil {
		return nil, nil, err
	}
	cblock, _ := pem.Decode(cb)
	kblock, _ := pem.Decode(kb)
	if cblock == nil || kblock == nil {
		return nil, nil, fmt.Errorf("%s.crt or %s.key is not PEM", name, name)
	}
	cert, err := x509.ParseCertificate(cblock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kblock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}
