package cli

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// run runs the command line and returns its exit code and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	t.Setenv("GODWIT_HOST", "")
	t.Setenv("GODWIT_SOCKET", "")
	missing := filepath.Join(t.TempDir(), "godwit.sock")
	cases := []struct {
		what   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown flag", []string{"vm", "list", "--bogus"}, ExitUsage, "unknown flag: --bogus"},
		{"unknown global flag", []string{"--bogus"}, ExitUsage, "unknown flag"},
		{"missing argument", []string{"vm", "show"}, ExitUsage, "expected a VM name"},
		{"extra argument", []string{"vm", "start", "a", "b"}, ExitUsage, "got 2 argument(s)"},
		{"missing -f", []string{"vm", "create"}, ExitUsage, "-f SPEC.yaml is required"},
		{"bad -o", []string{"vm", "list", "-o", "xml"}, ExitUsage, `"xml" is not table, json or yaml`},
		{"bad flag value", []string{"vm", "stop", "--timeout", "soon", "web1"}, ExitUsage, "soon"},
		{"unknown command", []string{"frobnicate"}, ExitUsage, `unknown command "frobnicate"`},
		{"unknown subcommand", []string{"vm", "frobnicate"}, ExitUsage, `unknown command "frobnicate" for "godwit vm"`},
		{"misspelt subcommand", []string{"vm", "stp", "web1"}, ExitUsage, "or stop?"},
		{"daemon unreachable", []string{"--socket", missing, "vm", "list"}, ExitError, "cannot reach the godwit daemon at " + missing},
		{"daemon unreachable for an action", []string{"--socket", missing, "vm", "start", "web1"}, ExitError, "cannot reach the godwit daemon"},
		{"missing spec file", []string{"--socket", missing, "vm", "create", "-f", filepath.Join(t.TempDir(), "nope.yaml")}, ExitError, "nope.yaml"},
	}
	for _, c := range cases {
		code, _, stderr := run(t, c.args...)
		if code != c.code {
			t.Errorf("%s (%q): exit %d, want %d; stderr %q", c.what, c.args, code, c.code, stderr)
		}
		if !strings.Contains(stderr, c.stderr) {
			t.Errorf("%s (%q): stderr %q does not say %q", c.what, c.args, stderr, c.stderr)
		}
		if c.code == ExitUsage && !strings.Contains(stderr, "--help") {
			t.Errorf("%s: a usage error does not point at --help: %q", c.what, stderr)
		}
	}
	if code, out, _ := run(t, "version"); code != ExitOK || out == "" {
		t.Errorf("version: exit %d, output %q", code, out)
	}
	if code, out, _ := run(t, "vm"); code != ExitOK || !strings.Contains(out, "Available Commands") {
		t.Errorf("vm alone: exit %d, want 0 with the help; output %q", code, out)
	}
	if code, out, _ := run(t); code != ExitOK || !strings.Contains(out, "Available Commands") {
		t.Errorf("no arguments: exit %d, want 0 with the help; output %q", code, out)
	}
}

// No command's own flag hides a flag every command has (--host, --token,
// -o...): cobra lets it, and the global one then silently stops working
// for that command (a `--host URL` read as a placement host sent the
// request to the local socket instead).
func TestNoFlagShadowsAGlobalOne(t *testing.T) {
	root := NewRoot(io.Discard, io.Discard)
	global := map[string]bool{}
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) {
		global["--"+f.Name] = true
		if f.Shorthand != "" {
			global["-"+f.Shorthand] = true
		}
	})
	// Meant: the daemon's --socket is where it serves (the same thing);
	// a join's --token is the one-time join token (host add, cluster
	// join run on the host that joins: GODWIT_TOKEN still sets the other).
	meant := map[string]bool{"godwit daemon --socket": true, "godwit host add --token": true, "godwit cluster join --token": true}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if meant[c.CommandPath()+" --"+f.Name] {
				return
			}
			if global["--"+f.Name] || (f.Shorthand != "" && global["-"+f.Shorthand]) {
				t.Errorf("%s: its flag --%s (-%s) hides the global one", c.CommandPath(), f.Name, f.Shorthand)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
