package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "API tokens for the TCP API (bearer tokens, read or admin scope)",
		Long: `Clients of the TCP API (--listen) prove who they are with a client
certificate from the daemon's CA or with a bearer token. A token has a name
and a scope: read (every GET: lists, metrics, events) or admin (everything).
The daemon keeps only a hash: the secret is printed once, at creation.

  godwit --host https://h1:8443 --tls-dir DIR --token "$TOKEN" vm list
  (DIR needs only ca.crt when a token is given; env GODWIT_TOKEN)

Not to be confused with 'godwit host token', the one-time token another
host joins this one with.`,
	}
	var scope, name string
	create := &cobra.Command{
		Use:   "create --name NAME [--scope read|admin]",
		Short: "Create a token and print its secret (shown only now)",
		Args:  exactArgs(0, "no arguments (use --name)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return usagef("--name is required")
			}
			if scope != api.ScopeRead && scope != api.ScopeAdmin {
				return usagef("--scope: %q is not read or admin", scope)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			t, err := c.CreateToken(cmd.Context(), api.TokenRequest{Name: name, Scope: scope})
			if err != nil {
				return err
			}
			return printMade(g, t, t.Secret, func() {
				fmt.Fprintf(g.errOut, "Token %s (%s, scope %s) created. Its secret, shown only now:\n", t.Name, t.ID, t.Scope)
				fmt.Fprintln(g.out, t.Secret)
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "a name to recognise the token by (unique)")
	create.Flags().StringVar(&scope, "scope", api.ScopeRead, "read or admin")
	_ = create.RegisterFlagCompletionFunc("scope", cobra.FixedCompletions([]string{"read", "admin"}, cobra.ShellCompDirectiveNoFileComp))

	list := listCmd(g, listing[api.Token]{
		use:     "list",
		aliases: []string{"ls"},
		short:   "List tokens (never their secrets)",
		fetch:   (*client.Client).ListTokens,
		wrap:    func(list []api.Token) any { return api.TokenList{Tokens: list} },
		header:  []string{"ID", "NAME", "SCOPE", "AGE"},
		row:     func(t api.Token) []string { return []string{t.ID, t.Name, t.Scope, age(t.CreatedAt)} },
	})
	revoke := &cobra.Command{
		Use:     "revoke ID|NAME",
		Aliases: []string{"delete", "rm"},
		Short:   "Revoke a token: it stops working at once",
		Args:    exactArgs(1, "a token id or name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			t, err := c.RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if !g.quiet {
				fmt.Fprintf(g.out, "Token %s (%s) revoked.\n", t.Name, t.ID)
			}
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func newAuditCmd(g *globals) *cobra.Command {
	var limit int
	cmd := listCmd(g, listing[api.AuditEntry]{
		use:   "audit",
		short: "Show the audit log: every change request, who sent it, when, and how it ended",
		fetch: func(c *client.Client, ctx context.Context) ([]api.AuditEntry, error) {
			return c.Audit(ctx, limit)
		},
		wrap:   func(entries []api.AuditEntry) any { return api.AuditList{Entries: entries} },
		header: []string{"TIME", "WHO", "WHAT", "STATUS", "DETAIL"},
		row: func(e api.AuditEntry) []string {
			what := e.Method + " " + e.Path
			if e.Query != "" {
				what += "?" + e.Query
			}
			detail := e.Error
			if e.Operation != "" {
				detail = "op " + e.Operation + " " + e.Target
			}
			return []string{e.Time.Local().Format(time.DateTime), e.Principal, what, fmt.Sprint(e.Status), strings.TrimSpace(detail)}
		},
	})
	cmd.Long = `The daemon appends one JSON line per request that could change something
(every method but GET) to STATE-DIR/audit.log (mode 0600): the time, the
principal (local:uid=0, cert:NAME, token:NAME, or anonymous when refused),
method, path, status, the operation it started, and the error. This shows
its last entries; the file itself is for jq, grep or a log shipper.`
	cmd.Flags().IntVar(&limit, "limit", 50, "the last N entries (0: all)")
	return cmd
}
