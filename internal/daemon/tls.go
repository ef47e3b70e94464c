package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"

	"github.com/godwit-project/godwit/internal/pki"
)

// tlsDir holds the daemon's CA and certificates.
func (d *Daemon) tlsDir() string { return filepath.Join(d.cfg.StateDir, "tls") }

// loadTLS loads (or makes, on first start) the daemon's CA and
// certificates, when it listens on TCP.
func (d *Daemon) loadTLS(context.Context) error {
	if d.cfg.Listen == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(d.cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen %q: want ADDR:PORT: %w", d.cfg.Listen, err)
	}
	names := []string{"localhost"}
	if hn, err := os.Hostname(); err == nil {
		names = append(names, hn)
	}
	if d.cfg.Name != "" && d.cfg.Name != names[len(names)-1] {
		names = append(names, d.cfg.Name)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	addHost := func(h string) {
		if ip := net.ParseIP(h); ip != nil {
			if !ip.IsUnspecified() && !ip.IsLoopback() {
				ips = append(ips, ip)
			}
		} else if h != "" && h != "localhost" {
			names = append(names, h)
		}
	}
	addHost(host)
	if d.cfg.Advertise != "" {
		if u, err := url.Parse(d.cfg.Advertise); err == nil {
			addHost(u.Hostname())
		}
	}
	d.tlsID, err = pki.LoadOrCreate(d.tlsDir(), d.cfg.Name, names, ips)
	return err
}

// listenTLS serves the API on TCP, only over TLS 1.3. Clients present a
// certificate from this daemon's CA (STATE/tls/client.* is one, for the
// local admin), a bearer token (godwit token create) or, for peers, a
// certificate from a peer's CA; the HTTP layer refuses everyone else
// (auth.go).
func (d *Daemon) listenTLS(context.Context) (net.Listener, error) {
	l, err := net.Listen("tcp", d.cfg.Listen)
	if err != nil {
		return nil, err
	}
	d.log.Info("serving the API over TLS", "listen", l.Addr().String(), "advertise", d.cfg.Advertise, "tlsDir", d.tlsDir())
	return tls.NewListener(l, d.tlsID.ServerTLS(d.peers.TrustedCAs)), nil
}
