package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"

	"github.com/godwit-project/godwit/api"
)

// MigrateVM starts moving a VM to another host.
func (c *Client) MigrateVM(ctx context.Context, name string, req api.MigrateRequest) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodPost, "/v1/vms/"+url.PathEscape(name)+"/migrate", nil, req, &out)
	return out, err
}

// Evacuate starts moving every running VM off the daemon's host.
func (c *Client) Evacuate(ctx context.Context, req api.EvacuateRequest) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodPost, "/v1/host/evacuate", nil, req, &out)
	return out, err
}

// The calls below are daemon to daemon (peer scope).

// MigrationPreflight asks a destination whether a VM can move there.
func (c *Client) MigrationPreflight(ctx context.Context, offer api.MigrationOffer) (api.PreflightAnswer, error) {
	var out api.PreflightAnswer
	err := c.do(ctx, http.MethodPost, "/v1/peer/migrations/preflight", nil, offer, &out)
	return out, err
}

// MigrationPrepare makes the destination ready to receive a VM.
func (c *Client) MigrationPrepare(ctx context.Context, offer api.MigrationOffer) (api.PrepareAnswer, error) {
	var out api.PrepareAnswer
	err := c.do(ctx, http.MethodPost, "/v1/peer/migrations", nil, offer, &out)
	return out, err
}

// MigrationFinish ends a migration on the destination (or cancels it).
func (c *Client) MigrationFinish(ctx context.Context, id string, req api.FinishRequest) (api.FinishAnswer, error) {
	var out api.FinishAnswer
	err := c.do(ctx, http.MethodPost, "/v1/peer/migrations/"+url.PathEscape(id)+"/finish", nil, req, &out)
	return out, err
}

// MigrationKeepalive tells the destination the source is still at it.
func (c *Client) MigrationKeepalive(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/v1/peer/migrations/"+url.PathEscape(id)+"/keepalive", nil, nil, nil)
}

// MigrationUpload streams a file of a moving VM (a disk, or the saved
// memory state) to the destination. Its SHA-256, counted as the bytes go
// out, follows them as a trailer (so the file is read once, not hashed
// first), and the destination checks it. It returns that sum.
func (c *Client) MigrationUpload(ctx context.Context, id, file string, r io.Reader) (string, error) {
	body := &summingBody{r: r, h: sha256.New(), trailer: http.Header{api.HeaderSHA256: nil}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+"/v1/peer/migrations/"+url.PathEscape(id)+"/files/"+url.PathEscape(file), body)
	if err != nil {
		return "", err
	}
	req.ContentLength = -1 // chunked: a trailer follows
	req.Trailer = body.trailer
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.stream.Do(req)
	if err != nil {
		return "", fmt.Errorf("upload %s to %s: %w", file, c.where, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return "", decodeError(resp)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return body.sum, nil
}

// summingBody hashes what is read through it and, at the end, puts the
// sum in the request's trailer (which the transport sends after the body).
type summingBody struct {
	r       io.Reader
	h       hash.Hash
	trailer http.Header
	sum     string
}

func (b *summingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.h.Write(p[:n])
	if err == io.EOF {
		b.sum = hex.EncodeToString(b.h.Sum(nil))
		b.trailer.Set(api.HeaderSHA256, b.sum)
	}
	return n, err
}

// DrainHost marks a host of the cluster unschedulable and moves its VMs
// to the hosts placement picks, in an operation of that host whose
// result is an api.EvacuationReport.
func (c *Client) DrainHost(ctx context.Context, host string, req api.EvacuateRequest) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodPost, "/v1/cluster/hosts/"+url.PathEscape(host)+"/drain", nil, req, &out)
	return out, err
}

// UndrainHost makes a drained host schedulable again.
func (c *Client) UndrainHost(ctx context.Context, host string) error {
	return c.do(ctx, http.MethodPost, "/v1/cluster/hosts/"+url.PathEscape(host)+"/undrain", nil, nil, nil)
}
