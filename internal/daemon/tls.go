package daemon

import (
	"context"
	"errors"
	"net"
)

// listenTLS serves the API on TCP. Until the daemon has its certificate
// authority (the peers work), a TCP listener would be unauthenticated, so
// it is refused rather than served in the clear.
func (d *Daemon) listenTLS(context.Context) (net.Listener, error) {
	return nil, errors.New("--listen: serving the API over TCP needs TLS, which this build does not have yet; use the unix socket")
}
