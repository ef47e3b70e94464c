// Package libvirt implements hypervisor.Hypervisor with go-libvirt over
// libvirtd's local unix socket. It owns the connection: it reconnects when
// libvirtd comes back, bounds every call with the caller's context (go-libvirt
// has none), and maps libvirt's errors onto hypervisor's sentinel errors.
package libvirt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

// DefaultURI is libvirt's system QEMU driver on this host.
const DefaultURI = "qemu:///system"

// Defaults that the daemon config may override.
const (
	defaultCallTimeout = 2 * time.Minute
	dialTimeout        = 5 * time.Second
	// Do not redial more often than this while libvirtd is down.
	redialEvery = time.Second
)

// Conn is a self-healing connection to one libvirtd.
type Conn struct {
	uri         string
	socket      string
	driver      golibvirt.ConnectURI
	log         *slog.Logger
	callTimeout time.Duration

	mu       sync.Mutex // guards the fields below; held while dialling
	l        *golibvirt.Libvirt
	lastErr  error
	lastDial time.Time
	info     *hypervisor.HostInfo // static host facts, per connection
}

var (
	_ hypervisor.Hypervisor = (*Conn)(nil)
	_ hypervisor.Migrator   = (*Conn)(nil)
)

// Options tune a Conn.
type Options struct {
	// CallTimeout bounds a call whose context has no deadline (default 2m).
	CallTimeout time.Duration
}

// New parses uri and returns a Conn; it does not connect yet. Accepted:
// qemu:///system and qemu+unix:///system?socket=PATH.
func New(uri string, log *slog.Logger, opts Options) (*Conn, error) {
	if uri == "" {
		uri = DefaultURI
	}
	socket, driver, err := parseURI(uri)
	if err != nil {
		return nil, err
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = defaultCallTimeout
	}
	return &Conn{uri: uri, socket: socket, driver: driver, log: log, callTimeout: opts.CallTimeout}, nil
}

func parseURI(uri string) (socket string, driver golibvirt.ConnectURI, err error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", "", fmt.Errorf("libvirt URI %q: %w", uri, err)
	}
	if u.Path != "/system" || u.Host != "" {
		return "", "", fmt.Errorf("libvirt URI %q: godwit talks to the local system instance only (qemu:///system, or qemu+unix:///system?socket=PATH)", uri)
	}
	switch u.Scheme {
	case "qemu":
		socket = "/var/run/libvirt/libvirt-sock"
	case "qemu+unix":
		socket = u.Query().Get("socket")
		if socket == "" {
			socket = "/var/run/libvirt/libvirt-sock"
		}
	default:
		return "", "", fmt.Errorf("libvirt URI %q: scheme %q is not supported (use qemu:///system or qemu+unix:///system?socket=PATH)", uri, u.Scheme)
	}
	return socket, golibvirt.ConnectURI("qemu:///system"), nil
}

// URI returns the URI the Conn was made with.
func (c *Conn) URI() string { return c.uri }

type dialer struct{ socket string }

func (d dialer) Dial() (net.Conn, error) {
	return net.DialTimeout("unix", d.socket, dialTimeout)
}

// dial opens a new go-libvirt connection, bounded by ctx. answered is
// false when ctx ended first (err is then ctx's error); a connection that
// completes late is closed, not leaked.
func (c *Conn) dial(ctx context.Context) (l *golibvirt.Libvirt, answered bool, err error) {
	l = golibvirt.NewWithDialer(dialer{c.socket})
	errc := make(chan error, 1)
	go func() { errc <- l.ConnectToURI(c.driver) }()
	select {
	case err := <-errc:
		if err != nil {
			return nil, true, err
		}
		return l, true, nil
	case <-ctx.Done():
		go func() {
			if <-errc == nil {
				_ = l.Disconnect()
			}
		}()
		return nil, false, ctx.Err()
	}
}

// client returns a live go-libvirt client, dialling when needed.
func (c *Conn) client(ctx context.Context) (*golibvirt.Libvirt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.l != nil && c.l.IsConnected() {
		return c.l, nil
	}
	if c.l != nil {
		c.log.Warn("lost the connection to libvirt", "socket", c.socket)
		c.l, c.info = nil, nil
	}
	if c.lastErr != nil && time.Since(c.lastDial) < redialEvery {
		return nil, c.lastErr
	}
	c.lastDial = time.Now()
	l, _, err := c.dial(ctx)
	if err != nil {
		c.lastErr = fmt.Errorf("libvirt is not reachable at %s: %v (is libvirtd running? scripts/host-setup.sh starts it): %w",
			c.socket, err, hypervisor.ErrUnavailable)
		return nil, c.lastErr
	}
	if c.lastErr != nil {
		c.log.Info("connected to libvirt again", "socket", c.socket)
	} else {
		c.log.Info("connected to libvirt", "socket", c.socket)
	}
	c.l, c.lastErr = l, nil
	return l, nil
}

// Connected reports whether the connection is up right now (no dialling).
func (c *Conn) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.l != nil && c.l.IsConnected()
}

// Close disconnects.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.l == nil {
		return nil
	}
	err := c.l.Disconnect()
	c.l = nil
	return err
}

// do runs f against libvirt, bounded by ctx (and the call timeout when ctx
// has no deadline), and maps its error. what names the call in errors.
func do[T any](ctx context.Context, c *Conn, what string, f func(l *golibvirt.Libvirt) (T, error)) (T, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.callTimeout)
		defer cancel()
	}
	return run(ctx, c, what, "libvirt did not answer: ", f)
}

// run runs f on the connection until it returns or ctx ends, and maps its
// error; late goes between what and ctx's error when ctx ended first.
func run[T any](ctx context.Context, c *Conn, what, late string, f func(l *golibvirt.Libvirt) (T, error)) (T, error) {
	var zero T
	l, err := c.client(ctx)
	if err != nil {
		return zero, err
	}
	v, answered, err := await(ctx, func() (T, error) { return f(l) })
	switch {
	case !answered:
		return zero, fmt.Errorf("%s: %s%w", what, late, err)
	case err != nil:
		return v, c.mapError(what, err)
	}
	return v, nil
}

// await runs f on a goroutine of its own and returns what it returns, or,
// not answered, ctx's error as soon as ctx ends: libvirt's RPC takes no
// context, so a call it never answers is left behind, its result dropped.
func await[T any](ctx context.Context, f func() (T, error)) (v T, answered bool, err error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, true, r.err
	case <-ctx.Done():
		return v, false, ctx.Err()
	}
}

// do0 is do for calls that return only an error.
func do0(ctx context.Context, c *Conn, what string, f func(l *golibvirt.Libvirt) error) error {
	_, err := do(ctx, c, what, func(l *golibvirt.Libvirt) (struct{}, error) { return struct{}{}, f(l) })
	return err
}

// Error is a libvirt error: what godwit was doing, libvirt's message, and
// the hypervisor sentinel it maps to (if any) for errors.Is.
type Error struct {
	Op   string
	Msg  string
	Code uint32
	kind error
}

func (e *Error) Error() string { return e.Op + ": " + e.Msg }

// Unwrap returns the sentinel, e.g. hypervisor.ErrNotFound.
func (e *Error) Unwrap() error { return e.kind }

// mapErrorKeep maps an error of a dedicated (session) connection: a lost
// session does not mean the main connection is lost.
func (c *Conn) mapErrorKeep(what string, err error) error {
	var le golibvirt.Error
	if errors.As(err, &le) {
		return c.mapError(what, err)
	}
	if isConnectionError(err) {
		return fmt.Errorf("%s: lost the migration connection to libvirt (%v): %w", what, err, hypervisor.ErrUnavailable)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (c *Conn) mapError(what string, err error) error {
	var le golibvirt.Error
	if errors.As(err, &le) {
		e := &Error{Op: what, Msg: le.Message, Code: le.Code}
		switch golibvirt.ErrorNumber(le.Code) {
		case golibvirt.ErrNoDomain, golibvirt.ErrNoStoragePool, golibvirt.ErrNoStorageVol, golibvirt.ErrNoNetwork,
			golibvirt.ErrDeviceMissing, golibvirt.ErrNoDomainSnapshot, golibvirt.ErrNoDomainCheckpoint:
			e.kind = hypervisor.ErrNotFound
		case golibvirt.ErrOperationUnsupported, golibvirt.ErrConfigUnsupported:
			e.kind = hypervisor.ErrUnsupported
		case golibvirt.ErrCheckpointInconsistent:
			e.kind = hypervisor.ErrCheckpointBroken
		case golibvirt.ErrOperationInvalid:
			e.kind = hypervisor.ErrInvalidState
		case golibvirt.ErrDomExist, golibvirt.ErrStorageVolExist, golibvirt.ErrNetworkExist:
			e.kind = hypervisor.ErrExists
		case golibvirt.ErrAgentUnresponsive, golibvirt.ErrAgentUnsynced:
			e.kind = hypervisor.ErrAgentUnavailable
		}
		return e
	}
	if isConnectionError(err) {
		c.mu.Lock()
		if old := c.l; old != nil {
			c.l, c.info = nil, nil
			go func() { _ = old.Disconnect() }()
		}
		c.mu.Unlock()
		return fmt.Errorf("%s: lost the connection to libvirt (%v): %w", what, err, hypervisor.ErrUnavailable)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func isConnectionError(err error) bool {
	var ne net.Error
	return errors.Is(err, golibvirt.ErrInterrupted) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &ne) ||
		strings.Contains(err.Error(), "use of closed network connection")
}
