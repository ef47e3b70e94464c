package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// LoadOrCreateCA loads the CA in dir (ca.crt, ca.key), making one named
// commonName when there is none. The Identity it returns holds no server
// certificate: it only signs (a cluster's CA signs its store members'
// certificates with WriteMemberTLS).
func LoadOrCreateCA(dir, commonName string) (*Identity, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	id := &Identity{Dir: dir}
	var err error
	id.CA, id.caKey, err = loadPair(dir, "ca")
	if errors.Is(err, os.ErrNotExist) {
		id.CA, id.caKey, err = createCA(dir, commonName)
	}
	if err != nil {
		return nil, fmt.Errorf("certificate authority in %s: %w", dir, err)
	}
	return id, nil
}

// WriteCA installs in dir a CA handed over in PEM (the cluster's, given
// to a host that joins it) and returns it as LoadOrCreateCA would. It
// refuses a certificate that is no CA or a key that is not its own.
func WriteCA(dir, certPEM, keyPEM string) (*Identity, error) {
	cb, _ := pem.Decode([]byte(certPEM))
	kb, _ := pem.Decode([]byte(keyPEM))
	if cb == nil || kb == nil {
		return nil, errors.New("CA certificate or key is not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if !cert.IsCA || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("the CA certificate is no CA, or the key is not its own")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := writePair(dir, "ca", cert.Raw, key); err != nil {
		return nil, err
	}
	return &Identity{Dir: dir, CA: cert, caKey: key}, nil
}

// CAKeyPEM is the CA's private key in PEM: only for handing a cluster's
// CA to a host that joins it, over a channel the join token authenticated.
func (id *Identity) CAKeyPEM() (string, error) {
	kb, err := x509.MarshalECPrivateKey(id.caKey)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})), nil
}

// CAFile is the path of the CA certificate.
func (id *Identity) CAFile() string { return filepath.Join(id.Dir, "ca.crt") }
