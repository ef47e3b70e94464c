package pki

import (
	"crypto/x509"
	"net"
	"os"
	"slices"
	"testing"
)

func TestWriteMemberTLS(t *testing.T) {
	id, err := LoadOrCreate(t.TempDir(), "h1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadOrCreate(t.TempDir(), "h2", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ips := []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("127.0.0.1")}
	f, err := id.WriteMemberTLS(dir, "h1", []string{"h1.lan"}, ips, other.CA)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := loadPair(dir, "member")
	if err != nil || key == nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(f.KeyFile); st.Mode().Perm() != 0o600 {
		t.Fatalf("member.key mode %v", st.Mode())
	}
	if !covers(cert, []string{"h1.lan"}, ips) {
		t.Fatalf("SANs %v %v", cert.DNSNames, cert.IPAddresses)
	}
	// One certificate serves and dials: etcd members are both.
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if !slices.Contains(cert.ExtKeyUsage, u) {
			t.Fatalf("usage %v missing: %v", u, cert.ExtKeyUsage)
		}
	}
	cfg, err := f.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	// ca.crt trusts this CA and the other one.
	for _, ca := range []*Identity{id, other} {
		leaf, _, err := ca.sign(subject("x"), nil, nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(leaf)
		if _, err := c.Verify(x509.VerifyOptions{Roots: cfg.RootCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("a certificate of %s does not verify against ca.crt: %v", ca.CA.Subject.CommonName, err)
		}
	}
	// Kept while it still covers; reissued for a new address.
	if _, err := id.WriteMemberTLS(dir, "h1", []string{"h1.lan"}, ips[:1]); err != nil {
		t.Fatal(err)
	}
	same, _, _ := loadPair(dir, "member")
	if !same.Equal(cert) {
		t.Fatal("a covering certificate was reissued")
	}
	if _, err := id.WriteMemberTLS(dir, "h1", nil, append(ips, net.ParseIP("10.0.0.2"))); err != nil {
		t.Fatal(err)
	}
	if re, _, _ := loadPair(dir, "member"); re.Equal(cert) || !covers(re, nil, []net.IP{net.ParseIP("10.0.0.2")}) {
		t.Fatal("the certificate was not reissued for a new address")
	}
}

func TestCAHandover(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir, "cluster")
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateCA(dir, "cluster")
	if err != nil || !again.CA.Equal(ca.CA) {
		t.Fatalf("reloaded CA differs (%v)", err)
	}
	keyPEM, err := ca.CAKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	got, err := WriteCA(t.TempDir(), ca.CAPEM(), keyPEM)
	if err != nil || !got.CA.Equal(ca.CA) {
		t.Fatalf("WriteCA: %v", err)
	}
	// What the joiner signs chains to the one CA.
	f, err := got.WriteMemberTLS(t.TempDir(), "m2", nil, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.CertFile)
	cert, err := ParseCertPEM(string(b))
	if err != nil || cert.CheckSignatureFrom(ca.CA) != nil {
		t.Fatalf("member certificate of the joiner does not chain to the cluster CA: %v", err)
	}
	other, _ := LoadOrCreateCA(t.TempDir(), "other")
	otherKey, _ := other.CAKeyPEM()
	if _, err := WriteCA(t.TempDir(), ca.CAPEM(), otherKey); err == nil {
		t.Fatal("WriteCA took a key that is not the CA's")
	}
}
