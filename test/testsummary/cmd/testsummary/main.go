// Command testsummary turns `go test -json` on stdin into plain go test
// output, then lists the skipped tests and each package's time, slowest
// first:
//
//	set -o pipefail; go test -json ./... | go run ./test/testsummary/cmd/testsummary
//
// It exits 1 when a package failed (or the stream ended mid-way), so the
// pipeline fails even without pipefail.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/godwit-project/godwit/test/testsummary"
)

func main() {
	top := flag.Int("top", 0, "list only the N slowest packages (0: all)")
	flag.Parse()
	sum, err := testsummary.Copy(os.Stdin, os.Stdout)
	sum.Write(os.Stdout, *top)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(1)
	}
	if sum.Failed {
		os.Exit(1)
	}
}
