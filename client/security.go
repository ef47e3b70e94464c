package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/godwit-project/godwit/api"
)

// CreateToken makes an API token; the answer holds its secret, shown once.
func (c *Client) CreateToken(ctx context.Context, req api.TokenRequest) (api.NewToken, error) {
	var out api.NewToken
	err := c.do(ctx, http.MethodPost, "/v1/tokens", nil, req, &out)
	return out, err
}

// ListTokens lists API tokens (without secrets).
func (c *Client) ListTokens(ctx context.Context) ([]api.Token, error) {
	var out api.TokenList
	err := c.do(ctx, http.MethodGet, "/v1/tokens", nil, nil, &out)
	return out.Tokens, err
}

// RevokeToken revokes a token by id or name.
func (c *Client) RevokeToken(ctx context.Context, idOrName string) (api.Token, error) {
	var out api.Token
	err := c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(idOrName), nil, nil, &out)
	return out, err
}

// Audit returns the last limit entries of the audit log (0: all kept).
func (c *Client) Audit(ctx context.Context, limit int) ([]api.AuditEntry, error) {
	var out api.AuditList
	err := c.do(ctx, http.MethodGet, "/v1/audit", url.Values{"limit": {fmt.Sprint(limit)}}, nil, &out)
	return out.Entries, err
}
