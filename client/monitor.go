package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/godwit-project/godwit/api"
)

// HostChecks runs the daemon's health checks.
func (c *Client) HostChecks(ctx context.Context) (api.HealthReport, error) {
	var out api.HealthReport
	err := c.do(ctx, http.MethodGet, "/v1/host/checks", nil, nil, &out)
	return out, err
}

// Stats reads every VM's counters now (vm: only that one).
func (c *Client) Stats(ctx context.Context, vm string) (api.StatsSample, error) {
	q := url.Values{}
	if vm != "" {
		q.Set("vm", vm)
	}
	var out api.StatsSample
	err := c.do(ctx, http.MethodGet, "/v1/stats", q, nil, &out)
	return out, err
}

// Metrics returns the Prometheus text exposition.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.send(ctx, http.MethodGet, "/metrics", nil, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// EventsOptions narrow and resume Events.
type EventsOptions struct {
	VM   string // only events about this VM
	Type string // only vm or operation events
	// Host: in a cluster, the events of this host (default: of the host
	// asked, or of VM's host).
	Host string
	// LastEventID resumes after this event (0: only new events).
	LastEventID uint64
}

// Events streams the daemon's events to fn until ctx ends (nil), the
// daemon ends the stream (io.EOF: resume with the last id seen), or fn
// returns an error (returned as is).
func (c *Client) Events(ctx context.Context, opts EventsOptions, fn func(api.Event) error) error {
	q := url.Values{}
	if opts.VM != "" {
		q.Set("vm", opts.VM)
	}
	if opts.Type != "" {
		q.Set("type", opts.Type)
	}
	if opts.Host != "" {
		q.Set("host", opts.Host)
	}
	u := c.base + "/v1/events"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if opts.LastEventID > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(opts.LastEventID, 10))
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("cannot reach the godwit daemon at %s: %w", c.where, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeError(resp)
	}
	err = readSSE(resp.Body, fn)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// readSSE parses a server-sent event stream, calling fn with each event's
// data decoded. It returns io.EOF when the stream ends.
func readSSE(r io.Reader, fn func(api.Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data.Len() == 0 {
				continue
			}
			var e api.Event
			if err := json.Unmarshal([]byte(data.String()), &e); err != nil {
				return fmt.Errorf("decode event: %w", err)
			}
			data.Reset()
			if err := fn(e); err != nil {
				return err
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.EOF
}
