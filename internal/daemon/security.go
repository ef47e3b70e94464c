package daemon

import (
	"context"
	"net/http"

	"github.com/godwit-project/godwit/api"
)

// securityRoutes: API tokens and the audit log, for admins only.
func (d *Daemon) securityRoutes() []route {
	return []route{
		{Admin, op("create-token", http.MethodPost, "/v1/tokens", "Create an API token (its secret is shown once)", "security"), handle(d.createToken)},
		{Admin, op("list-tokens", http.MethodGet, "/v1/tokens", "List API tokens (never their secrets)", "security"), handle(d.listTokens)},
		{Admin, op("revoke-token", http.MethodDelete, "/v1/tokens/{id}", "Revoke an API token (by id or name)", "security"), handle(d.revokeToken)},
		{Admin, op("get-audit", http.MethodGet, "/v1/audit", "Read the audit log: every change request, who sent it and how it ended", "security"), handle(d.getAudit)},
	}
}

func (d *Daemon) createToken(ctx context.Context, in *struct{ Body api.TokenRequest }) (*struct{ Body api.NewToken }, error) {
	t, err := d.mon.tokens.Create(ctx, in.Body.Name, in.Body.Scope)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.NewToken }{t}, nil
}

func (d *Daemon) listTokens(ctx context.Context, _ *struct{}) (*struct{ Body api.TokenList }, error) {
	list, err := d.mon.tokens.List(ctx)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.TokenList }{api.TokenList{Tokens: list}}, nil
}

func (d *Daemon) revokeToken(ctx context.Context, in *struct {
	ID string `path:"id" doc:"The token's id or name."`
}) (*struct{ Body api.Token }, error) {
	t, err := d.mon.tokens.Revoke(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.Token }{t}, nil
}

func (d *Daemon) getAudit(_ context.Context, in *struct {
	Limit int `query:"limit" minimum:"0" maximum:"100000" default:"100" doc:"Only the last N entries; 0 for all (of the last 8 MiB)."`
}) (*struct{ Body api.AuditList }, error) {
	entries, err := d.mon.audit.Tail(in.Limit)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.AuditList }{api.AuditList{Entries: entries}}, nil
}
