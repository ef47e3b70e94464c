// Package client is the Go client of godwit's REST API. Every call takes a
// context first. Errors from the daemon come back as *api.StatusError, so
// callers can check the status with api.Status(err).
//
//	c, _ := client.New(client.Options{})        // the local daemon's socket
//	op, _ := c.CreateVM(ctx, spec, client.CreateOptions{Start: true})
//	op, err := c.WaitOperation(ctx, op.ID, nil)  // err if the create failed
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/godwit-project/godwit/api"
)

// DefaultSocket is where a daemon started without --socket listens.
const DefaultSocket = "/run/godwit/godwit.sock"

// Options say how to reach the daemon: a unix socket (default) or a URL.
type Options struct {
	// Socket is the daemon's unix socket (default DefaultSocket).
	Socket string
	// URL, when set, is an https:// address of a daemon's TCP listener.
	URL string
	// TLS is the client's TLS config for URL: the daemon's CA and a client
	// certificate it issued (see TLSDir).
	TLS *tls.Config
	// Token, when set, is sent as "Authorization: Bearer TOKEN" (over TLS
	// only: the unix socket needs none).
	Token string
	// HTTPClient overrides the transport entirely.
	HTTPClient *http.Client
	// OnStale, when set, hears the api.HeaderStale of every answer that
	// has one: a host of a cluster without a quorum answered a read from
	// its last view.
	OnStale func(msg string)
}

// Client talks to one daemon.
type Client struct {
	base   string
	where  string
	http   *http.Client
	stream *http.Client // no timeout: console follow and long waits
	token  string
	stale  func(string)
}

// New returns a client. It does not connect yet.
func New(opts Options) (*Client, error) {
	if opts.URL != "" {
		u, err := url.Parse(opts.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("daemon URL %q: want https://HOST:PORT", opts.URL)
		}
		if u.Scheme == "http" {
			return nil, fmt.Errorf("daemon URL %q: the TCP API is served only over TLS (https://)", opts.URL)
		}
		hc := opts.HTTPClient
		if hc == nil {
			if opts.TLS == nil {
				return nil, fmt.Errorf("daemon URL %q: needs the daemon's CA, and a client certificate or a token (--tls-dir and --token, or GODWIT_TLS_DIR and GODWIT_TOKEN)", opts.URL)
			}
			hc = &http.Client{Transport: &http.Transport{TLSClientConfig: opts.TLS}}
		}
		return &Client{base: strings.TrimRight(opts.URL, "/"), where: opts.URL, http: hc, stream: hc, token: opts.Token, stale: opts.OnStale}, nil
	}
	sock := opts.Socket
	if sock == "" {
		sock = DefaultSocket
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: tr}
	}
	return &Client{base: "http://godwit", where: sock, http: hc, stream: hc, stale: opts.OnStale}, nil
}

// do sends a request with a JSON body (if any) and decodes a JSON answer
// into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	resp, err := c.send(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

// send returns a response with a 2xx status, or the daemon's error.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach the godwit daemon at %s: %w (is `godwit daemon` running, and are you root?)", c.where, unwrapURLError(err))
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	if msg := resp.Header.Get(api.HeaderStale); msg != "" && c.stale != nil {
		c.stale(msg)
	}
	return resp, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var se api.StatusError
	if json.Unmarshal(b, &se) == nil && se.Message != "" {
		if se.Code == 0 {
			se.Code = resp.StatusCode
		}
		return &se
	}
	msg := strings.TrimSpace(string(b))
	if msg == "" {
		msg = resp.Status
	}
	return &api.StatusError{Message: msg, Code: resp.StatusCode}
}

func flag(q url.Values, name string, on bool) {
	if on {
		q.Set(name, "true")
	}
}

// ListVMs lists every VM, managed or not (in a cluster: of every host).
func (c *Client) ListVMs(ctx context.Context) ([]api.VM, error) {
	return c.ListVMsOf(ctx, "")
}

// ListVMsOf lists the VMs of one host of the cluster ("": of every host).
func (c *Client) ListVMsOf(ctx context.Context, host string) ([]api.VM, error) {
	q := url.Values{}
	if host != "" {
		q.Set("host", host)
	}
	var out api.VMList
	err := c.do(ctx, http.MethodGet, "/v1/vms", q, nil, &out)
	return out.VMs, err
}

// GetVM shows one VM.
func (c *Client) GetVM(ctx context.Context, name string) (api.VM, error) {
	var out api.VM
	err := c.do(ctx, http.MethodGet, "/v1/vms/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

// CreateOptions tune CreateVM and ApplyVM.
type CreateOptions struct {
	Start bool
	// Host pins the VM to a host of the cluster ("": placement picks one).
	Host string
}

// CreateVM starts creating a VM and returns the operation (in a cluster,
// of the host that creates it).
func (c *Client) CreateVM(ctx context.Context, spec api.VMSpec, opts CreateOptions) (api.Operation, error) {
	q := url.Values{}
	flag(q, "start", opts.Start)
	if opts.Host != "" {
		q.Set("host", opts.Host)
	}
	var out api.Operation
	err := c.do(ctx, http.MethodPost, "/v1/vms", q, spec, &out)
	return out, err
}

// Place says where vm create would put a VM of spec, and why, without
// creating it (host: only that host is asked).
func (c *Client) Place(ctx context.Context, spec api.VMSpec, host string) (api.PlacementDecision, error) {
	q := url.Values{}
	if host != "" {
		q.Set("host", host)
	}
	var out api.PlacementDecision
	err := c.do(ctx, http.MethodPost, "/v1/placement", q, spec, &out)
	return out, err
}

// ApplyVM makes a VM match spec (creating it when missing).
func (c *Client) ApplyVM(ctx context.Context, spec api.VMSpec, opts CreateOptions) (api.Operation, error) {
	q := url.Values{}
	flag(q, "start", opts.Start)
	var out api.Operation
	err := c.do(ctx, http.MethodPut, "/v1/vms/"+url.PathEscape(spec.Name), q, spec, &out)
	return out, err
}

// SetVM changes some settings of a VM, live where QEMU can (vm set); the
// operation's result is an api.ApplyResult.
func (c *Client) SetVM(ctx context.Context, name string, set api.VMSet) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodPost, "/v1/vms/"+url.PathEscape(name)+"/set", nil, set, &out)
	return out, err
}

// DeleteOptions tune DeleteVM.
type DeleteOptions struct {
	KeepDisks bool
	Force     bool
}

// DeleteVM starts deleting a VM.
func (c *Client) DeleteVM(ctx context.Context, name string, opts DeleteOptions) (api.Operation, error) {
	q := url.Values{}
	flag(q, "keepDisks", opts.KeepDisks)
	flag(q, "force", opts.Force)
	var out api.Operation
	err := c.do(ctx, http.MethodDelete, "/v1/vms/"+url.PathEscape(name), q, nil, &out)
	return out, err
}

func (c *Client) vmOp(ctx context.Context, name, action string, body any) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodPost, "/v1/vms/"+url.PathEscape(name)+"/"+action, nil, body, &out)
	return out, err
}

func (c *Client) vmNow(ctx context.Context, name, action string) (api.VM, error) {
	var out api.VM
	err := c.do(ctx, http.MethodPost, "/v1/vms/"+url.PathEscape(name)+"/"+action, nil, nil, &out)
	return out, err
}

// StartVM starts a stopped VM.
func (c *Client) StartVM(ctx context.Context, name string) (api.Operation, error) {
	return c.vmOp(ctx, name, "start", nil)
}

// StopVM shuts a VM down (ACPI, or destroy with Force).
func (c *Client) StopVM(ctx context.Context, name string, req api.StopRequest) (api.Operation, error) {
	return c.vmOp(ctx, name, "stop", req)
}

// RebootVM reboots a running VM.
func (c *Client) RebootVM(ctx context.Context, name string) (api.Operation, error) {
	return c.vmOp(ctx, name, "reboot", nil)
}

// KillVM destroys a running VM at once.
func (c *Client) KillVM(ctx context.Context, name string) (api.VM, error) {
	return c.vmNow(ctx, name, "kill")
}

// PauseVM pauses a running VM.
func (c *Client) PauseVM(ctx context.Context, name string) (api.VM, error) {
	return c.vmNow(ctx, name, "pause")
}

// ResumeVM resumes a paused VM.
func (c *Client) ResumeVM(ctx context.Context, name string) (api.VM, error) {
	return c.vmNow(ctx, name, "resume")
}

// ConsoleOptions tune Console.
type ConsoleOptions struct {
	Follow bool
	Lines  int
	// Offset starts at this byte of the log, e.g. StartResult.ConsoleOffset.
	Offset int64
}

// Console returns the VM's console log as a stream; with Follow it stays
// open until ctx ends. Close it when done.
func (c *Client) Console(ctx context.Context, name string, opts ConsoleOptions) (io.ReadCloser, error) {
	q := url.Values{}
	flag(q, "follow", opts.Follow)
	if opts.Lines > 0 {
		q.Set("lines", fmt.Sprint(opts.Lines))
	}
	if opts.Offset > 0 {
		q.Set("offset", fmt.Sprint(opts.Offset))
	}
	resp, err := c.send(ctx, http.MethodGet, "/v1/vms/"+url.PathEscape(name)+"/console", q, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// OperationFilter narrows ListOperations.
type OperationFilter struct {
	Target string
	Active bool
	// Host: only this host's operations ("": in a cluster, every host's).
	Host string
}

// ListOperations lists operations, newest first.
func (c *Client) ListOperations(ctx context.Context, f OperationFilter) ([]api.Operation, error) {
	q := url.Values{}
	if f.Target != "" {
		q.Set("target", f.Target)
	}
	flag(q, "active", f.Active)
	if f.Host != "" {
		q.Set("host", f.Host)
	}
	var out api.OperationList
	err := c.do(ctx, http.MethodGet, "/v1/operations", q, nil, &out)
	return out.Operations, err
}

// GetOperation shows one operation.
func (c *Client) GetOperation(ctx context.Context, id string) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodGet, "/v1/operations/"+url.PathEscape(id), nil, nil, &out)
	return out, err
}

// CancelOperation asks a running operation to stop.
func (c *Client) CancelOperation(ctx context.Context, id string) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodPost, "/v1/operations/"+url.PathEscape(id)+"/cancel", nil, nil, &out)
	return out, err
}

// WaitOperation waits until the operation ends and returns it, with its
// error (api.Operation.Err) when it failed. With onProgress set it polls
// and reports every change; otherwise it long-polls the daemon.
func (c *Client) WaitOperation(ctx context.Context, id string, onProgress func(api.Operation)) (api.Operation, error) {
	var last api.Operation
	for {
		var op api.Operation
		var err error
		if onProgress != nil {
			op, err = c.GetOperation(ctx, id)
		} else {
			err = c.do(ctx, http.MethodGet, "/v1/operations/"+url.PathEscape(id)+"/wait", url.Values{"timeout": {"30"}}, nil, &op)
		}
		if err != nil {
			return op, err
		}
		if onProgress != nil && (op.UpdatedAt != last.UpdatedAt || op.State != last.State) {
			onProgress(op)
		}
		last = op
		if op.State.Final() {
			return op, op.Err()
		}
		if onProgress != nil {
			select {
			case <-ctx.Done():
				return op, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// Close closes the client's idle connections. A client for a peer, made
// for one job, should be closed when the job ends: its transport keeps
// connections open otherwise, and a daemon shutting down waits for those
// it never got a request on.
func (c *Client) Close() {
	c.http.CloseIdleConnections()
	c.stream.CloseIdleConnections()
}

// Host describes the daemon's host.
func (c *Client) Host(ctx context.Context) (api.Host, error) {
	var out api.Host
	err := c.do(ctx, http.MethodGet, "/v1/host", nil, nil, &out)
	return out, err
}
