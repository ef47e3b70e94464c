// Package cli is godwit's command line: cobra commands, one file per noun
// (vm.go, op.go, host.go, daemon.go). Commands talk to the daemon through
// the Go client, like any other program would.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/buildinfo"
	"github.com/godwit-project/godwit/internal/pki"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// usageError marks a mistake in how the command was called (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// globals are the flags every command has.
type globals struct {
	socket string
	host   string
	tlsDir string
	token  string
	output string
	quiet  bool
	out    io.Writer
	errOut io.Writer
}

func (g *globals) client() (*client.Client, error) {
	opts := client.Options{Socket: g.socket, URL: g.host, Token: g.token, OnStale: g.staleOnce()}
	if g.host != "" && g.tlsDir != "" {
		cfg, err := pki.ClientTLS(g.tlsDir)
		if err != nil {
			return nil, fmt.Errorf("--tls-dir: %w", err)
		}
		opts.TLS = cfg
	}
	return client.New(opts)
}

// staleOnce prints, once per command, that the daemon answered from a
// stale view (a host of a cluster without a quorum): on stderr, so that
// -o json stays what it was.
func (g *globals) staleOnce() func(string) {
	var once sync.Once
	return func(msg string) {
		once.Do(func() { fmt.Fprintf(g.errOut, "stale: %s\n", msg) })
	}
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ec exitCode
	if errors.As(err, &ec) {
		if ec.msg != "" {
			fmt.Fprintln(stderr, "Error:", ec.msg)
		}
		return ec.code
	}
	fmt.Fprintln(stderr, "Error:", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "Run 'godwit --help' for usage.")
		return ExitUsage
	}
	return ExitError
}

// NewRoot builds the command tree.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{out: stdout, errOut: stderr}
	root := &cobra.Command{
		Use:   "godwit",
		Short: "Run, migrate and back up KVM virtual machines",
		Long: `godwit manages KVM virtual machines through libvirt: VMs from a short YAML
spec, with their disks, consoles and lifecycle, driven from this command line,
a REST API, or the Go client. Every VM is an ordinary libvirt domain that
virsh can see.

A daemon runs on each host ('godwit daemon'); the other commands talk to it
over its unix socket (--socket, or GODWIT_SOCKET).`,
		Example: `  godwit daemon &                         # start the daemon (as root)
  godwit vm create -f web1.yaml --start   # create and boot a VM
  godwit vm list
  godwit vm console web1                  # follow its serial console
  godwit vm stop web1`,
		Version:       buildinfo.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.socket, "socket", envOr("GODWIT_SOCKET", client.DefaultSocket), "daemon unix socket (env GODWIT_SOCKET)")
	pf.StringVar(&g.host, "host", os.Getenv("GODWIT_HOST"), "daemon URL instead of the socket, https://HOST:PORT (env GODWIT_HOST)")
	pf.StringVar(&g.tlsDir, "tls-dir", os.Getenv("GODWIT_TLS_DIR"), "with --host: directory with the daemon's ca.crt and, unless --token is given, a client.crt/client.key it issued (env GODWIT_TLS_DIR)")
	pf.StringVar(&g.token, "token", os.Getenv("GODWIT_TOKEN"), "with --host: a bearer token (godwit token create) instead of a client certificate (env GODWIT_TOKEN)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table, json or yaml")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "print only what scripts need (ids, names)")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		switch g.output {
		case "table", "json", "yaml":
			return nil
		}
		return usagef("--output: %q is not table, json or yaml", g.output)
	}

	root.AddCommand(newDaemonCmd(g), newVMCmd(g), newOpCmd(g), newHostCmd(g), newVersionCmd(g))
	root.AddCommand(newBackupCmd(g), newSnapshotCmd(g))
	root.AddCommand(newImageCmd(g), newPoolCmd(g), newVolumeCmd(g))
	root.AddCommand(newMigrateCmd(g))
	root.AddCommand(newTokenCmd(g), newAuditCmd(g), newEventsCmd(g), newTopCmd(g))
	root.AddCommand(newCertCmd(g))
	root.AddCommand(newNetworkCmd(g))
	root.AddCommand(newClusterCmd(g))
	rejectUnknownCommands(root)
	return root
}

// rejectUnknownCommands makes the commands that only group others (godwit,
// godwit vm ...) print their help when called alone, and refuse an
// unknown subcommand as a usage error. Left to cobra, "godwit frobnicate"
// is a plain error and "godwit vm frobnicate" prints the help and exits 0.
func rejectUnknownCommands(c *cobra.Command) {
	if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.SuggestionsMinimumDistance = 2
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += " (did you mean " + strings.Join(s, " or ") + "?)"
			}
			return usageError{errors.New(msg)}
		}
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	for _, sub := range c.Commands() {
		rejectUnknownCommands(sub)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// exactArgs is cobra.ExactArgs with a usage error and a friendlier message.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("expected %s, got %d argument(s)", what, len(args))
		}
		return nil
	}
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this godwit",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(g.out, buildinfo.String())
			return nil
		},
	}
}
