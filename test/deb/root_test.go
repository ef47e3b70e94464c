package deb

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// baseDir caches a debootstrap'd Debian 12 (minbase) between runs; each
// test copies it and throws the copy away.
const (
	baseDir    = "/var/tmp/godwit-deb-base"
	rootPrefix = "/var/tmp/godwit-deb-root-"
)

// mirror is this machine's Debian mirror, as fresh-machine.sh finds it.
func mirror() string {
	if b, err := os.ReadFile("/etc/apt/sources.list.d/debian.sources"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "URIs:" {
				return f[1]
			}
		}
	}
	if b, err := os.ReadFile("/etc/apt/sources.list"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == "deb" {
				return f[1]
			}
		}
	}
	return "http://deb.debian.org/debian"
}

// freshBase returns the cached base root, making it first when missing
// (debootstrap in its own mount and PID namespaces, so the /proc and
// /sys it mounts in the target go with it, even when it is killed).
func freshBase(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(baseDir, "usr/bin/apt-get")); err == nil {
		return baseDir
	}
	tmp := baseDir + ".tmp"
	os.RemoveAll(tmp)
	start := time.Now()
	logPath := baseDir + ".log"
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "-m", "-p", "-f", "--kill-child", "--propagation", "private", "--mount-proc",
		"debootstrap", "--variant=minbase", "--include=mount", "bookworm", tmp, mirror())
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("debootstrap: %v\n%s", err, tail(string(b), 30))
	}
	if err := os.Rename(tmp, baseDir); err != nil {
		t.Fatal(err)
	}
	t.Logf("debootstrap of the base root (cached in %s): %s", baseDir, time.Since(start).Round(time.Second))
	return baseDir
}

// removeStaleRoots removes the roots of test runs whose process is gone.
func removeStaleRoots(t *testing.T) {
	dirs, _ := filepath.Glob(rootPrefix + "*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(d, rootPrefix))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue
		}
		t.Logf("removing %s, left by a run that died", d)
		os.RemoveAll(d)
	}
}

// newRoot copies the base into a root of this test run's own.
func newRoot(t *testing.T, base string) string {
	t.Helper()
	removeStaleRoots(t)
	root := fmt.Sprintf("%s%d", rootPrefix, os.Getpid())
	os.RemoveAll(root)
	if out, err := exec.Command("cp", "-a", base, root).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v: %s", base, root, err, out)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(root); err != nil {
			t.Errorf("remove %s: %v", root, err)
		}
	})
	return root
}

// holderScript makes the root its own world and then holds its
// namespaces open: run as PID 1 of a new PID namespace, in a new mount
// namespace (and network namespace when asked), it mounts /proc, /sys, a
// tmpfs /run and /tmp and a minimal /dev of its own (never the host's:
// installing libvirt and QEMU regroups /dev/kvm), brings up lo, pivots
// into the root and waits, reaping what is orphaned to it.
const holderScript = `set -eu
R=$1 NET=$2
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$R/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/tmp"
mount -t tmpfs -o mode=0755,nosuid tmpfs "$R/dev"
for d in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0 ptmx:5:2; do
	IFS=: read -r n a b <<EOF
$d
EOF
	mknod -m 0666 "$R/dev/$n" c "$a" "$b"
done
mkdir -p "$R/dev/pts" "$R/dev/shm" "$R/dev/net"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$R/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm"
mknod -m 0666 "$R/dev/net/tun" c 10 200
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"
if [ "$NET" = 1 ]; then ip link set lo up; fi
cd "$R"
mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot
echo ready
exec /bin/bash -c 'trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done'
`

// World is a root running in namespaces of its own.
type World struct {
	t      *testing.T
	Root   string
	net    bool
	cmd    *exec.Cmd
	init   int // PID 1 of its PID namespace, as this machine sees it
	pidNS  string
	waited chan struct{}
}

// enter starts the holder for root: with net, in a network namespace
// of its own (only lo); without, on this machine's network (for apt's
// downloads, where no maintainer script runs and no daemon starts).
func enter(t *testing.T, root string, net bool) *World {
	t.Helper()
	args := []string{"-m", "-p", "-f", "--kill-child", "--propagation", "private"}
	if net {
		args = append(args, "-n")
	}
	args = append(args, "sh", "-c", holderScript, "holder", root, map[bool]string{true: "1", false: "0"}[net])
	w := &World{t: t, Root: root, net: net, waited: make(chan struct{})}
	w.cmd = exec.Command("unshare", args...)
	var stderr bytes.Buffer
	w.cmd.Stderr = &stderr
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Dies with this test binary, and takes the namespace along.
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if sc.Text() == "ready" {
				ok = true
				break
			}
		}
		ready <- ok
		for sc.Scan() {
		}
	}()
	go func() { _ = w.cmd.Wait(); close(w.waited) }()
	select {
	case ok := <-ready:
		if !ok {
			<-w.waited
			t.Fatalf("the root's namespaces did not come up: %s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the root's namespaces did not come up within 30s: %s", stderr.String())
	}
	w.init = childOf(w.cmd.Process.Pid)
	if w.init == 0 {
		t.Fatalf("no PID 1 under unshare %d", w.cmd.Process.Pid)
	}
	w.pidNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", w.init))
	return w
}

// childOf returns a child of pid (unshare has exactly one).
func childOf(pid int) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so after the last ')'.
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			return child
		}
	}
	return 0
}

// Procs returns the PIDs (as this machine sees them) of every process in
// the world's PID namespace.
func (w *World) Procs() []int {
	var pids []int
	if w.pidNS == "" {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); ns == w.pidNS {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ProcsNamed returns the world's processes whose command name is comm.
func (w *World) ProcsNamed(comm string) []int {
	var out []int
	for _, pid := range w.Procs() {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(b)) == comm {
			out = append(out, pid)
		}
	}
	return out
}

// Close kills every process left in the world, each by PID, then its
// holder, and waits until none is left.
func (w *World) Close() {
	if w.cmd == nil {
		return
	}
	for round := 0; round < 100; round++ {
		pids := w.Procs()
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if left := w.Procs(); len(left) > 0 {
		w.t.Errorf("processes left in %s after SIGKILL: %v", w.Root, left)
	}
	_ = w.cmd.Process.Kill()
	<-w.waited
	w.cmd = nil
}

// inside is the command line that runs argv in the world, with a clean
// environment.
func (w *World) inside(argv ...string) []string {
	ns := []string{"nsenter", "-t", strconv.Itoa(w.init), "-m", "-p", "-r", "-w"}
	if w.net {
		ns = append(ns, "-n")
	}
	env := []string{"--", "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8",
		"DEBIAN_FRONTEND=noninteractive", "TERM=dumb"}
	return append(append(ns, env...), argv...)
}

// Run runs argv in the world and returns its combined output.
func (w *World) Run(timeout time.Duration, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	a := w.inside(argv...)
	cmd := exec.CommandContext(ctx, a[0], a[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%v (timed out after %s)", err, timeout)
	}
	return string(out), err
}

// Must is Run that fails the test on an error.
func (w *World) Must(timeout time.Duration, argv ...string) string {
	w.t.Helper()
	out, err := w.Run(timeout, argv...)
	if err != nil {
		w.t.Fatalf("in the root: %s: %v\n%s", strings.Join(argv, " "), err, tail(out, 40))
	}
	return out
}

// Start starts argv in the world in the background, its output to log.
// The channel is closed when it exits.
func (w *World) Start(log string, argv ...string) <-chan struct{} {
	w.t.Helper()
	f, err := os.Create(log)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	a := w.inside(argv...)
	cmd := exec.Command(a[0], a[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	return done
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
