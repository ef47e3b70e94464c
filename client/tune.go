package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/godwit-project/godwit/api"
)

// HostTune checks the host's settings for VMs against a profile ("": the
// default, virtual-host).
func (c *Client) HostTune(ctx context.Context, profile string) (api.TuneReport, error) {
	q := url.Values{}
	if profile != "" {
		q.Set("profile", profile)
	}
	var out api.TuneReport
	err := c.do(ctx, http.MethodGet, "/v1/host/tune", q, nil, &out)
	return out, err
}

// ApplyHostTune sets the profile's runtime settings (a dry run says what
// it would set), and with Persist writes them for the next boot.
func (c *Client) ApplyHostTune(ctx context.Context, req api.TuneRequest) (api.TuneResult, error) {
	var out api.TuneResult
	err := c.do(ctx, http.MethodPost, "/v1/host/tune/apply", nil, req, &out)
	return out, err
}

// RevertHostTune puts back what ApplyHostTune changed.
func (c *Client) RevertHostTune(ctx context.Context) (api.TuneResult, error) {
	var out api.TuneResult
	err := c.do(ctx, http.MethodPost, "/v1/host/tune/revert", nil, nil, &out)
	return out, err
}
