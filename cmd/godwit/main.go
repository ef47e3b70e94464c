// Command godwit is the godwit daemon and its command line in one binary.
package main

import (
	"context"
	"os"

	"github.com/godwit-project/godwit/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
