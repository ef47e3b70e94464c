// Command godwit is the godwit daemon and its command line in one binary.
package main

import (
	"context"
	"os"

	"github.com/godwit-project/godwit/internal/cli"
	"github.com/godwit-project/godwit/internal/fenceguard"
)

func main() {
	// The daemon re-executes itself as its fence guard: no command tree,
	// nothing but the guard (hidden from --help).
	if len(os.Args) > 1 && os.Args[1] == fenceguard.Command {
		os.Exit(fenceguard.Main(os.Args[2:], os.Stderr))
	}
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
