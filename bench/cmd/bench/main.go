// Command bench runs godwit's benchmarks (package bench):
//
//	go run ./bench/cmd/bench -all              # every benchmark
//	go run ./bench/cmd/bench -run create-boot  # some, comma-separated
//	go run ./bench/cmd/bench -list
//
// Each benchmark prints progress lines, then one line per metric:
// "bench <name>: <metric> godwit=<v> baseline=<v> ratio=<r>". The exit
// status is 1 when a benchmark could not measure (not when godwit is
// slow), 2 on bad usage, 130 when interrupted. Ctrl-C stops the run and
// cleans up; a second Ctrl-C does not cut the cleanup short.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/godwit-project/godwit/bench"
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	all := fs.Bool("all", false, "run every benchmark")
	names := fs.String("run", "", "run these benchmarks (comma-separated names)")
	runs := fs.Int("runs", 5, "measured runs of each variant (after one warm-up run)")
	list := fs.Bool("list", false, "list the benchmarks")
	repo := fs.String("repo", "", "root of the godwit tree (default: found from the working directory)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bench -all | -run NAME[,NAME] [-runs N] | -list\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if *list {
		for _, b := range bench.All() {
			fmt.Printf("%-14s %s\n", b.Name, b.Summary)
		}
		return 0
	}
	var todo []bench.Benchmark
	switch {
	case *all && *names != "":
		return usage(fs, "give -all or -run, not both")
	case *all:
		todo = bench.All()
	case *names != "":
		for _, n := range strings.Split(*names, ",") {
			b, ok := bench.Lookup(strings.TrimSpace(n))
			if !ok {
				return usage(fs, fmt.Sprintf("no benchmark %q (-list shows them)", n))
			}
			todo = append(todo, b)
		}
	default:
		return usage(fs, "give -all or -run NAME")
	}
	if *runs < 1 {
		return usage(fs, "-runs must be at least 1")
	}
	root := *repo
	if root == "" {
		var err error
		if root, err = findRepo(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "bench: interrupted; cleaning up (VMs, QEMU, daemon, pool, temp files)")
		cancel()
		for range sigs {
			fmt.Fprintln(os.Stderr, "bench: still cleaning up, please wait")
		}
	}()

	opts := bench.Options{Repo: root, Runs: *runs, Out: os.Stdout}
	failed := 0
	for _, b := range todo {
		if ctx.Err() != nil {
			break
		}
		if _, err := bench.Run(ctx, b, opts); err != nil {
			failed++
		}
	}
	switch {
	case ctx.Err() != nil:
		return 130
	case failed > 0:
		fmt.Fprintf(os.Stderr, "bench: %d of %d benchmarks could not measure\n", failed, len(todo))
		return 1
	}
	return 0
}

func usage(fs *flag.FlagSet, msg string) int {
	fmt.Fprintln(fs.Output(), "bench:", msg)
	fs.Usage()
	return 2
}

// findRepo walks up from the working directory to godwit's go.mod.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/godwit-project/godwit\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the godwit tree (no go.mod of github.com/godwit-project/godwit above the working directory); use -repo")
		}
		dir = parent
	}
}
