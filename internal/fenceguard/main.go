package fenceguard

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// Command is the hidden subcommand that runs a guard.
const Command = "fence-guard"

// feedFD is the guard's end of the daemon's pipe (its first extra file).
const feedFD = 3

// Main runs a guard from its command line (after "fence-guard"):
// --pid-file, --log, --pid-dir, --fenced-file. It exits 0 stood down or
// never fed, 3 fired, 2 on bad arguments.
func Main(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(Command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	pidFile := fs.String("pid-file", "", "the guard's pid file (STATE/fence-guard.pid)")
	logPath := fs.String("log", "", "the guard's log (STATE/fence-guard.log)")
	pidDir := fs.String("pid-dir", LibvirtPIDDir, "where libvirt keeps the QEMUs' pid files")
	fenced := fs.String("fenced-file", "", "the daemon's list of fenced VMs to settle")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *pidFile == "" || *logPath == "" {
		fmt.Fprintln(stderr, "fence-guard: --pid-file and --log are required")
		return 2
	}
	logf, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintln(stderr, "fence-guard:", err)
		return 2
	}
	defer logf.Close()
	// Only a stand-down or SIGKILL ends it before its deadline: not a
	// signal meant for the daemon, nor a hang-up.
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE)
	// The OOM killer must not take it along with (or instead of) the
	// daemon it guards against.
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("-1000"), 0); err != nil {
		fmt.Fprintf(logf, "fence-guard[%d]: cannot set oom_score_adj -1000: %v\n", os.Getpid(), err)
	}
	if err := syscall.SetNonblock(feedFD, true); err != nil {
		fmt.Fprintf(logf, "fence-guard[%d]: no pipe from the daemon on fd %d: %v\n", os.Getpid(), feedFD, err)
		return 2
	}
	me := strconv.Itoa(os.Getpid())
	if err := os.WriteFile(*pidFile, []byte(me+"\n"), 0o600); err != nil {
		fmt.Fprintf(logf, "fence-guard[%d]: cannot write %s: %v\n", os.Getpid(), *pidFile, err)
	}
	defer func() {
		if b, err := os.ReadFile(*pidFile); err == nil && strings.TrimSpace(string(b)) == me {
			os.Remove(*pidFile)
		}
	}()
	out, why := Run(Options{Feed: os.NewFile(feedFD, "daemon-feed"), PIDDir: *pidDir, FencedFile: *fenced, Log: logf})
	fmt.Fprintf(logf, "fence-guard[%d]: exits: %s\n", os.Getpid(), why)
	if out == Fired {
		return 3
	}
	return 0
}
