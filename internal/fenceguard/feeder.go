package fenceguard

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Feeder is the daemon's side: it starts a guard at the first feed (and
// again after one fired or died), feeds it, and stands it down.
type Feeder struct {
	Exe        string // the godwit binary (re-executed with Command)
	PIDFile    string // STATE/fence-guard.pid
	Log        string // STATE/fence-guard.log
	PIDDir     string // LibvirtPIDDir ("" = that)
	FencedFile string

	mu      sync.Mutex
	w       *os.File // the pipe to the running guard
	pid     int
	exited  chan struct{}
	stopped bool // stood down: no guard starts again
	buf     []byte
}

// writeWait bounds a write to the guard's pipe: a stopped guard whose
// pipe is full must not hang the daemon's fence loop.
const writeWait = 200 * time.Millisecond

// Feed tells the guard to fire left from now unless fed again, killing
// vms; it starts a guard if none runs.
func (f *Feeder) Feed(left time.Duration, vms []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return nil
	}
	f.buf = AppendFeed(f.buf[:0], left, vms)
	if f.w != nil {
		select {
		case <-f.exited:
			f.w.Close()
			f.w = nil
		default:
		}
	}
	if f.w == nil {
		return f.start()
	}
	_ = f.w.SetWriteDeadline(time.Now().Add(writeWait))
	if _, err := f.w.Write(f.buf); err != nil {
		return fmt.Errorf("feed the fence guard (pid %d): %w", f.pid, err)
	}
	return nil
}

// start starts a guard, its first feed already in the pipe (so it is
// armed from its first read).
func (f *Feeder) start() error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := w.Write(f.buf); err != nil {
		w.Close()
		return err
	}
	pidDir := f.PIDDir
	if pidDir == "" {
		pidDir = LibvirtPIDDir
	}
	cmd := exec.Command(f.Exe, Command, "--pid-file", f.PIDFile, "--log", f.Log, "--pid-dir", pidDir, "--fenced-file", f.FencedFile)
	cmd.ExtraFiles = []*os.File{r}
	// Its own session: a signal to the daemon's process group (a
	// terminal's ^C, a supervisor's group kill) does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start the fence guard: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	f.w, f.pid, f.exited = w, cmd.Process.Pid, exited
	return nil
}

// PID is the running guard's pid (0: none).
func (f *Feeder) PID() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.exited == nil {
		return 0
	}
	select {
	case <-f.exited:
		return 0
	default:
		return f.pid
	}
}

// StandDown tells the running guard to exit without killing, waits for
// it (up to wait), and starts none after.
func (f *Feeder) StandDown(wait time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	if f.w == nil {
		return nil
	}
	defer func() { f.w.Close(); f.w = nil }()
	_ = f.w.SetWriteDeadline(time.Now().Add(writeWait))
	if _, err := f.w.Write([]byte{standDownMsg, '\n'}); err != nil {
		return fmt.Errorf("stand the fence guard (pid %d) down: %w", f.pid, err)
	}
	select {
	case <-f.exited:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("the fence guard (pid %d) did not stand down within %s", f.pid, wait)
	}
}

// Stop ends the feeding without a stand-down (tests: the daemon "dies"):
// the guard fires at its deadline.
func (f *Feeder) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	if f.w != nil {
		f.w.Close()
		f.w = nil
	}
}

// AwaitPredecessor waits for a guard left by an earlier daemon of this
// state dir (its pid file, checked to be a guard with that pid file:
// a daemon that died leaves one running until its deadline, the last one
// that daemon could have fenced by) to fire or go, up to wait; one still
// there after is killed. It says what it found ("" for none).
func AwaitPredecessor(pidFile string, wait time.Duration) (string, error) {
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !IsGuard(pid, pidFile) {
		return "", nil // stale: a guard that was killed, or another process now
	}
	t0 := time.Now()
	for time.Since(t0) < wait {
		if !IsGuard(pid, pidFile) {
			return fmt.Sprintf("the fence guard (pid %d) of an earlier daemon ran; it ended after %s", pid, time.Since(t0).Round(time.Millisecond)), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !IsGuard(pid, pidFile) {
		return "", nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return "", fmt.Errorf("kill the earlier daemon's fence guard (pid %d): %w", pid, err)
	}
	return fmt.Sprintf("the fence guard (pid %d) of an earlier daemon still ran after %s: killed it", pid, wait), nil
}

// IsGuard says whether process pid is a fence guard keeping pidFile
// (its command line: BINARY fence-guard ... --pid-file pidFile ...).
func IsGuard(pid int, pidFile string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	i := slices.Index(argv, "--pid-file")
	return len(argv) > 1 && argv[1] == Command && i > 0 && i+1 < len(argv) && argv[i+1] == pidFile
}
