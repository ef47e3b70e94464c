package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/godwit-project/godwit/internal/pki"
)

// tlsDir holds the daemon's CA and certificates.
func (d *Daemon) tlsDir() string { return filepath.Join(d.cfg.StateDir, "tls") }

// listenTLS serves the API on TCP, only over TLS 1.3, to clients with a
// certificate from this daemon's CA (STATE/tls/client.* is one, for the
// local admin; copy it with ca.crt to a machine that should manage this
// host) or a bearer token (godwit token create); auth.go checks which.
func (d *Daemon) listenTLS(context.Context) (net.Listener, error) {
	host, _, err := net.SplitHostPort(d.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: want ADDR:PORT: %w", d.cfg.Listen, err)
	}
	names := []string{"localhost"}
	if hn, err := os.Hostname(); err == nil {
		names = append(names, hn)
	}
	if d.cfg.Name != "" && d.cfg.Name != names[len(names)-1] {
		names = append(names, d.cfg.Name)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
		ips = append(ips, ip)
	} else if ip == nil && host != "" && host != "localhost" {
		names = append(names, host)
	}
	id, err := pki.LoadOrCreate(d.tlsDir(), d.cfg.Name, names, ips)
	if err != nil {
		return nil, err
	}
	d.mon.setIdentity(id)
	l, err := net.Listen("tcp", d.cfg.Listen)
	if err != nil {
		return nil, err
	}
	d.log.Info("serving the API over TLS", "listen", l.Addr().String(), "tlsDir", d.tlsDir())
	return tls.NewListener(l, id.ServerTLS()), nil
}
