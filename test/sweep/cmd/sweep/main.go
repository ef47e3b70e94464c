// Command sweep removes what earlier test runs left on this machine (see
// package sweep): `make test` runs it first; run it by hand after a
// killed or timed-out run. Without arguments it looks at every
// /var/tmp/gw-e2e-* and /var/tmp/gwtb-*, and at the system libvirtd's
// pools of e2e runs whose directory is gone; with some, at those directories.
// Runs still in progress are left alone. It exits 1 when it could not
// remove something it should have.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/godwit-project/godwit/test/sweep"
)

func main() {
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: sweep [DIR...]\n\nRemoves what dead test runs recorded in DIR/%s (default: %v).\n", sweep.File, sweep.DefaultGlobs)
	}
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	o := sweep.Options{Dirs: flag.Args(), Out: os.Stdout}
	if flag.NArg() == 0 {
		o.Orphans = sweep.E2EGlob
	}
	n, err := sweep.Sweep(ctx, o)
	fmt.Printf("sweep: %d director%s of dead runs removed\n", n, map[bool]string{true: "y", false: "ies"}[n == 1])
	if err != nil {
		os.Exit(1)
	}
}
