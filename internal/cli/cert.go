package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/pki"
)

func newCertCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Client certificates for the TCP API (read or admin scope)",
		Long: `Clients of the TCP API (--listen) prove who they are with a client
certificate from the daemon's CA or with a bearer token ('godwit token').
'cert create' has the daemon's CA issue a certificate for a name and a
scope, read (every GET: lists, metrics, events) or admin (everything), and
writes what a client needs into a directory for --tls-dir:

  DIR/ca.crt       the daemon's CA, to check the daemon
  DIR/client.crt   the certificate (NAME in its CN, the scope in its OU)
  DIR/client.key   its private key (0600); the daemon keeps no copy

  godwit --host https://h1:8443 --tls-dir DIR vm list

The audit log names its holder cert:NAME. A certificate is valid for two
years and cannot be revoked before: give admin certificates sparingly, and
prefer a token where revoking matters.`,
	}
	var scope, out string
	var force bool
	create := &cobra.Command{
		Use:   "create NAME [--scope read|admin] [--out DIR] [--force]",
		Short: "Issue a client certificate and write it to a directory for --tls-dir",
		Example: `  godwit cert create laptop                      # read-only, into ./godwit-laptop
  godwit cert create ci --scope admin --out /etc/ci/godwit
  godwit --host https://h1:8443 --tls-dir ./godwit-laptop vm list`,
		Args: exactArgs(1, "a name for the certificate"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if scope != api.ScopeRead && scope != api.ScopeAdmin {
				return usagef("--scope: %q is not read or admin", scope)
			}
			dir := out
			if dir == "" {
				dir = "godwit-" + name
			}
			// Refuse before anything is issued.
			if !force {
				for _, f := range pki.ClientFiles {
					if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
						return fmt.Errorf("%s exists: pick another --out, or --force to overwrite", filepath.Join(dir, f))
					}
				}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			nc, err := c.CreateCert(cmd.Context(), api.CertRequest{Name: name, Scope: scope})
			if err != nil {
				return err
			}
			err = pki.WriteClientDir(dir, []byte(nc.CA), []byte(nc.Cert), []byte(nc.Key), force)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%w: pick another --out, or --force to overwrite", err)
			}
			if err != nil {
				return err
			}
			url := g.host
			if url == "" {
				url = nc.URL
			}
			if url == "" {
				url = "https://ADDR:PORT"
			}
			written := certWritten{Name: nc.Name, Scope: nc.Scope, Serial: nc.Serial, Fingerprint: nc.Fingerprint, NotAfter: nc.NotAfter, URL: nc.URL, Dir: dir}
			return printMade(g, written, dir, func() {
				fmt.Fprintf(g.out, "Client certificate %s (scope %s, serial %s, valid until %s) written to %s/:\n",
					nc.Name, nc.Scope, nc.Serial, nc.NotAfter.Local().Format(time.DateOnly), dir)
				fmt.Fprintf(g.out, "  ca.crt, client.crt, client.key (0600; the daemon keeps no copy of the key)\n")
				fmt.Fprintf(g.out, "Use it with:\n  godwit --host %s --tls-dir %s vm list\n", url, dir)
			})
		},
	}
	create.Flags().StringVar(&scope, "scope", api.ScopeRead, "read or admin")
	create.Flags().StringVar(&out, "out", "", "directory to write ca.crt, client.crt and client.key to (default ./godwit-NAME)")
	create.Flags().BoolVar(&force, "force", false, "overwrite the files if they exist")
	_ = create.RegisterFlagCompletionFunc("scope", cobra.FixedCompletions([]string{"read", "admin"}, cobra.ShellCompDirectiveNoFileComp))
	_ = create.MarkFlagDirname("out")
	cmd.AddCommand(create)
	return cmd
}

// certWritten is what 'cert create -o json|yaml' prints: the certificate's
// facts and where it went, not the key.
type certWritten struct {
	Name        string    `json:"name"`
	Scope       string    `json:"scope"`
	Serial      string    `json:"serial"`
	Fingerprint string    `json:"fingerprint"`
	NotAfter    time.Time `json:"notAfter"`
	URL         string    `json:"url,omitempty"`
	Dir         string    `json:"dir"`
}
