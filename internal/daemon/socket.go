package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

func (d *Daemon) listen(ctx context.Context) error {
	l, err := listenUnix(d.cfg.Socket)
	if err != nil {
		return err
	}
	d.listeners = append(d.listeners, l)
	if d.cfg.Listen != "" {
		tl, err := d.listenTLS(ctx)
		if err != nil {
			return err
		}
		d.listeners = append(d.listeners, tl)
	}
	return nil
}

// listenUnix serves on a root-only unix socket. A socket file left by a
// daemon that died is replaced; one a live daemon answers on is an error.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err == nil {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("another godwit daemon is serving on %s (use --socket and --state-dir to run a second one)", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
