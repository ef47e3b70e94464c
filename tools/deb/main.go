// Command deb builds godwit's Debian package from a built binary: `make
// deb` runs it (go run ./tools/deb -binary bin/godwit -version V -out bin).
// The work is internal/debpkg's; this only reads the flags.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/godwit-project/godwit/internal/cli"
	"github.com/godwit-project/godwit/internal/debpkg"
)

func main() {
	bin := flag.String("binary", "bin/godwit", "the godwit binary to package (make build)")
	version := flag.String("version", "", "package version; the binary's `godwit version` must print it (scripts/version.sh)")
	out := flag.String("out", "bin", "directory for godwit_VERSION_amd64.deb")
	flag.Parse()
	date := time.Now()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "deb: SOURCE_DATE_EPOCH:", err)
			os.Exit(2)
		}
		date = time.Unix(sec, 0).UTC()
	}
	path, err := debpkg.Build(debpkg.Options{
		Binary: *bin, Version: *version, OutDir: *out, Date: date,
		Root: cli.NewRoot(io.Discard, io.Discard),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "deb:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}
