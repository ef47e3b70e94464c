package client

import (
	"context"
	"net/http"

	"github.com/godwit-project/godwit/api"
)

// CreateCert has the daemon's CA issue a client certificate; the answer
// holds its private key, shown once.
func (c *Client) CreateCert(ctx context.Context, req api.CertRequest) (api.NewCert, error) {
	var out api.NewCert
	err := c.do(ctx, http.MethodPost, "/v1/certs", nil, req, &out)
	return out, err
}
