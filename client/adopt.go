package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/godwit-project/godwit/api"
)

// AdoptVM takes a libvirt domain godwit did not define under management
// (with dryRun, only says what adopting would record).
func (c *Client) AdoptVM(ctx context.Context, name string, dryRun bool) (api.AdoptResult, error) {
	var out api.AdoptResult
	err := c.do(ctx, http.MethodPost, "/v1/vms/"+url.PathEscape(name)+"/adopt", nil, api.AdoptRequest{DryRun: dryRun}, &out)
	return out, err
}

// ReleaseVM hands an adopted VM back to plain libvirt.
func (c *Client) ReleaseVM(ctx context.Context, name string) (api.VM, error) {
	return c.vmNow(ctx, name, "release")
}
