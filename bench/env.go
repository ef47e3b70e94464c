package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LibvirtURI is the libvirtd every benchmark uses: the system one, shared
// with whatever else runs on the machine. Benchmarks touch only domains,
// pools and processes they made themselves.
const LibvirtURI = "qemu:///system"

// Env is what a benchmark runs with.
type Env struct {
	// Name is the benchmark's name; progress lines start with it.
	Name string
	// Repo is the root of the godwit source tree.
	Repo string
	// Runs is how many measured runs each variant gets.
	Runs int

	out     io.Writer
	outMu   sync.Mutex
	cleanup cleanups

	tmpOnce sync.Once
	tmp     string
	tmpErr  error
}

func newEnv(name string, opts Options) *Env {
	out := opts.Out
	if out == nil {
		out = os.Stdout
	}
	return &Env{Name: name, Repo: opts.Repo, Runs: opts.Runs, out: out}
}

// Logf prints a progress line, "<name>: <message>".
func (e *Env) Logf(format string, args ...any) {
	e.outMu.Lock()
	defer e.outMu.Unlock()
	fmt.Fprintf(e.out, "%s: %s\n", e.Name, fmt.Sprintf(format, args...))
}

// Defer registers an undo step; the steps run newest first when the
// benchmark ends, whether it succeeded, failed or was interrupted. The
// returned Cleanup can be run earlier.
func (e *Env) Defer(desc string, f func(ctx context.Context) error) *Cleanup {
	return e.cleanup.push(desc, f)
}

// TempDir returns the benchmark's temp dir (made on first use, removed at
// the end). It is mode 0711 so QEMU, running as another user under
// libvirt, can reach files below it by name.
func (e *Env) TempDir() (string, error) {
	e.tmpOnce.Do(func() {
		dir, err := os.MkdirTemp("", "godwit-bench-"+e.Name+"-")
		if err != nil {
			e.tmpErr = err
			return
		}
		e.Defer("remove "+dir, func(context.Context) error { return os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o711); err != nil {
			e.tmpErr = err
			return
		}
		e.tmp = dir
	})
	return e.tmp, e.tmpErr
}

// SubDir makes a directory (0711) below the temp dir.
func (e *Env) SubDir(name string) (string, error) {
	tmp, err := e.TempDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(tmp, name)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o711)
}

// RequireRoot fails unless the benchmark runs as root.
func (e *Env) RequireRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (libvirt's system socket, QEMU, storage pools)")
	}
	return nil
}

// RequireLibvirt fails unless the system libvirtd answers, then warms it:
// a cold libvirtd probes QEMU's capabilities (seconds) on first use, which
// must not land in a measurement.
func (e *Env) RequireLibvirt(ctx context.Context) error {
	if _, err := Virsh(ctx, "uri"); err != nil {
		return fmt.Errorf("libvirtd does not answer on %s (scripts/host-setup.sh starts it): %w", LibvirtURI, err)
	}
	if _, err := Virsh(ctx, "domcapabilities", "--virttype", "qemu"); err != nil {
		return fmt.Errorf("warm libvirt: %w", err)
	}
	return nil
}

// Guest is the tiny test guest (test/guest, built by `make guest`).
type Guest struct {
	Kernel string
	Initrd string
}

// GuestDir is where the test guest is: $GODWIT_GUEST_DIR, else
// REPO/.cache/guest.
func (e *Env) GuestDir() string {
	if dir := os.Getenv("GODWIT_GUEST_DIR"); dir != "" {
		return dir
	}
	return filepath.Join(e.Repo, ".cache", "guest")
}

// Guest finds the test guest's kernel and initrd.
func (e *Env) Guest() (Guest, error) {
	dir, err := filepath.Abs(e.GuestDir())
	if err != nil {
		return Guest{}, err
	}
	g := Guest{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.gz")}
	for _, f := range []string{g.Kernel, g.Initrd} {
		if _, err := os.Stat(f); err != nil {
			return g, fmt.Errorf("test guest missing (run `make guest`, or set GODWIT_GUEST_DIR): %w", err)
		}
	}
	return g, nil
}

// Command returns a command in its own process group, so a Ctrl-C on the
// terminal reaches only the benchmark, which then stops its children
// itself, in order, by PID.
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// run runs a short command and returns its stdout; the error carries
// stderr.
func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := Command(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}

// Virsh runs virsh on LibvirtURI.
func Virsh(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "virsh", append([]string{"-c", LibvirtURI}, args...)...)
}

// QemuImgCreate makes a blank qcow2 image.
func QemuImgCreate(ctx context.Context, path string, bytes uint64) error {
	_, err := run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", path, fmt.Sprint(bytes))
	return err
}

// RandomID returns n random bytes in hex, for names no one else uses.
func RandomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewUUID returns a random (version 4) UUID.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// WaitFileLine polls the file at path every interval until it contains
// needle, and returns when it first saw it. A file that does not exist yet
// counts as empty. It gives up when ctx ends or failed delivers (e.g. the
// process that should write the file exited).
func WaitFileLine(ctx context.Context, path, needle string, interval time.Duration, failed <-chan error) (time.Time, error) {
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var seen []byte
	buf := make([]byte, 64*1024)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if f == nil {
			f, _ = os.Open(path)
		}
		if f != nil {
			for {
				n, err := f.Read(buf)
				seen = append(seen, buf[:n]...)
				if n == 0 || err != nil {
					break
				}
			}
			if bytes.Contains(seen, []byte(needle)) {
				return time.Now(), nil
			}
			// Keep only what could still be the start of needle.
			if keep := len(needle); len(seen) > keep {
				seen = seen[len(seen)-keep:]
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%q never appeared in %s: %w", needle, path, ctx.Err())
		case err := <-failed:
			return time.Time{}, err
		case <-tick.C:
		}
	}
}

// WaitStreamLine reads r until a line contains needle and returns when it
// did.
func WaitStreamLine(r io.Reader, needle string) (time.Time, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if strings.Contains(sc.Text(), needle) {
			return time.Now(), nil
		}
	}
	if err := sc.Err(); err != nil {
		return time.Time{}, err
	}
	return time.Time{}, fmt.Errorf("stream ended before %q", needle)
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
