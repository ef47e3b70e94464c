package pki

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// A client directory written by WriteClientDir is what ClientTLS reads;
// it is not overwritten unless asked, and a failed write leaves nothing.
func TestWriteClientDir(t *testing.T) {
	id, err := LoadOrCreate(t.TempDir(), "h1", []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := id.NewClient("laptop", "read")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "godwit-laptop")
	if err := WriteClientDir(dir, []byte(id.CAPEM()), cc.CertPEM, cc.KeyPEM, false); err != nil {
		t.Fatal(err)
	}
	cfg, err := ClientTLS(dir)
	if err != nil || len(cfg.Certificates) != 1 {
		t.Fatalf("ClientTLS of the written dir: %v", err)
	}
	for name, want := range map[string]fs.FileMode{"": 0o700 | fs.ModeDir, "client.key": 0o600, "client.crt": 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode() != want {
			t.Errorf("%s/%s: mode %v, %v; want %v", dir, name, st.Mode(), err, want)
		}
	}
	if err := WriteClientDir(dir, []byte(id.CAPEM()), cc.CertPEM, cc.KeyPEM, false); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second write without overwrite: %v, want ErrExist", err)
	}
	if err := os.Chmod(filepath.Join(dir, "client.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteClientDir(dir, []byte(id.CAPEM()), cc.CertPEM, cc.KeyPEM, true); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "client.key")); st.Mode() != 0o600 {
		t.Fatalf("overwritten key: mode %v, want 0600", st.Mode())
	}

	// client.crt is in the way (a directory): the ca.crt written before it
	// is removed again.
	fresh := filepath.Join(t.TempDir(), "new")
	if err := os.MkdirAll(filepath.Join(fresh, "client.crt"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteClientDir(fresh, []byte(id.CAPEM()), cc.CertPEM, cc.KeyPEM, false); err == nil {
		t.Fatal("write over a directory named client.crt succeeded")
	}
	if _, err := os.Stat(filepath.Join(fresh, "ca.crt")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ca.crt left behind by a failed write: %v", err)
	}
}
