package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
)

// QEMUMarker marks a QEMU TLS directory godwit writes (and may rewrite).
const QEMUMarker = ".godwit"

// WriteQEMUTLS puts the x509 files QEMU's native TLS reads for migration
// (libvirt's migrate_tls_x509_cert_dir) into dir: ca-cert.pem holds this
// daemon's CA and its peers' CAs, and one certificate from this CA, valid
// for this host's names and addresses, serves as both server-cert.pem
// (receiving) and client-cert.pem (sending). A directory someone else
// filled (no marker) is left alone.
func (id *Identity) WriteQEMUTLS(dir string, peerCAs []*x509.Certificate) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, QEMUMarker)); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s holds QEMU TLS files godwit did not write; leaving them alone (point qemuTLSDir elsewhere, or remove them)", dir)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, QEMUMarker), []byte("written by the godwit daemon\n"), 0o644); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "ca-cert.pem"), caBundle(id.CA, peerCAs), 0o644); err != nil {
		return err
	}
	srv, err := x509.ParseCertificate(id.Server.Certificate[0])
	if err != nil {
		return err
	}
	cert, key, err := id.issue("qemu", srv.Subject.CommonName, srv.DNSNames, srv.IPAddresses,
		x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	for _, side := range []string{"server", "client"} {
		if err := writeFileAtomic(filepath.Join(dir, side+"-cert.pem"), certPEM, 0o644); err != nil {
			return err
		}
		if err := writeKeyForQEMU(filepath.Join(dir, side+"-key.pem"), keyPEM); err != nil {
			return err
		}
	}
	return nil
}

// writeKeyForQEMU writes a key QEMU can read: QEMU runs as an unprivileged
// user in the kvm group on most distributions, so the key is 0640 root:kvm
// there, and 0600 where no such group exists (QEMU then runs as root).
func writeKeyForQEMU(path string, data []byte) error {
	mode := os.FileMode(0o600)
	gid := -1
	if g, err := user.LookupGroup("kvm"); err == nil {
		if n, err := strconv.Atoi(g.Gid); err == nil {
			gid, mode = n, 0o640
		}
	}
	if err := writeFileAtomic(path, data, mode); err != nil {
		return err
	}
	if gid >= 0 {
		if err := os.Chown(path, 0, gid); err != nil {
			return err
		}
	}
	return os.Chmod(path, mode)
}

// QEMUTLSReady says whether dir holds what QEMU's migration TLS needs.
func QEMUTLSReady(dir string) error {
	for _, f := range []string{"ca-cert.pem", "server-cert.pem", "server-key.pem", "client-cert.pem", "client-key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("QEMU TLS is not set up: %v", err)
		}
	}
	return nil
}
