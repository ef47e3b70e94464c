// Package testbed runs several simulated hosts on one machine, for godwit's
// multi-host tests and demos. Each host is a network namespace with its own
// mount and UTS namespaces, a private libvirtd (its own /run/libvirt,
// /var/lib/libvirt, /etc/libvirt...) and a godwit daemon talking to it over
// its local unix socket. Hosts are joined by veth pairs to a bridge in a
// "switch" namespace, where links can be shaped (tc tbf) and cut.
//
// A directory outside the private mounts is seen at the same path by every
// host: it stands in for a cluster filesystem (shared storage).
//
// Everything is stopped by the PID the bed started it with, and Down
// removes it all, also after a failed test. When the process that made the
// bed dies first, <Dir>/sweep.json says what to remove, for the sweeper
// (test/sweep). Needs root.
package testbed

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/test/sweep"
)

// Options say what bed to build.
type Options struct {
	// Hosts is how many hosts (2 by default), named hosta, hostb, ...
	Hosts int
	// Godwit is the godwit binary the hosts run.
	Godwit string
	// Dir holds everything; default /var/tmp/gwtb-<id>.
	Dir string
	// Log receives progress lines (nil: none).
	Log io.Writer
	// DaemonArgs are extra `godwit daemon` flags for every host.
	DaemonArgs []string
	// SharedPool puts every host's disk pool in the shared directory (as a
	// cluster filesystem mounted at the same path everywhere would).
	SharedPool bool
	// LibvirtTCP makes each libvirtd listen on TCP without authentication,
	// only so that benchmarks can compare with virsh migrate --p2p. godwit
	// never needs it.
	LibvirtTCP bool
}

// Bed is a running set of hosts.
type Bed struct {
	ID     string
	Dir    string
	Shared string // the shared-storage directory
	Hosts  []*Host
	opts   Options
	swNS   string
	mu     sync.Mutex
	rec    *sweep.Recorder
}

// Host is one simulated host.
type Host struct {
	bed   *Bed
	Name  string
	Index int
	NS    string
	IP    string
	Dir   string
	// StateDir is the daemon's state dir as this machine sees it; inside
	// the host it is mounted at HostStateDir, the same path on every host
	// (as on real hosts) but private to each.
	StateDir string
	Socket   string
	Port     int
	C        *client.Client
	swVeth   string // its link's end in the switch namespace
	hostVeth string

	anchor     *exec.Cmd // holds the namespaces
	libvirtd   *exec.Cmd
	daemon     *exec.Cmd
	daemonDone chan struct{}
}

// HostStateDir is where every host's daemon keeps its state, inside it.
const HostStateDir = "/var/lib/godwit"

// RealPath turns a path inside the host into one this machine can open.
func (h *Host) RealPath(p string) string {
	if rest, ok := strings.CutPrefix(p, HostStateDir+"/"); ok {
		return filepath.Join(h.StateDir, rest)
	}
	return p
}

// URL is the host daemon's TCP API, reachable from the other hosts.
func (h *Host) URL() string { return fmt.Sprintf("https://%s:%d", h.IP, h.Port) }

func (b *Bed) logf(format string, args ...any) {
	if b.opts.Log != nil {
		fmt.Fprintf(b.opts.Log, "testbed: "+format+"\n", args...)
	}
}

// Up builds and starts a bed. On error everything made so far is removed.
func Up(ctx context.Context, opts Options) (*Bed, error) {
	if opts.Hosts == 0 {
		opts.Hosts = 2
	}
	if opts.Hosts > 9 {
		return nil, errors.New("testbed: at most 9 hosts")
	}
	if opts.Godwit == "" {
		return nil, errors.New("testbed: Options.Godwit (the binary) is required")
	}
	var r [3]byte
	_, _ = rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	if opts.Dir == "" {
		opts.Dir = "/var/tmp/gwtb-" + id
	}
	b := &Bed{ID: id, Dir: opts.Dir, Shared: filepath.Join(opts.Dir, "shared"), opts: opts, swNS: "gwtb-" + id + "-sw"}
	if err := b.up(ctx); err != nil {
		b.Down()
		return nil, err
	}
	return b, nil
}

func (b *Bed) up(ctx context.Context) error {
	if err := os.MkdirAll(b.Shared, 0o755); err != nil {
		return err
	}
	os.Chmod(b.Dir, 0o711)
	rec, err := sweep.NewRecorder(b.Dir, sweep.KindTestbed)
	if err != nil {
		return err
	}
	b.rec = rec
	// Recorded before it is made: the sweeper deletes only what exists.
	if err := b.rec.Update(func(r *sweep.Record) { r.ID, r.Netns = b.ID, append(r.Netns, b.swNS) }); err != nil {
		return err
	}
	// A /24 of 10.78.0.0/16 picked at random: beds side by side rarely
	// collide, and these addresses exist only inside the namespaces.
	var r [1]byte
	_, _ = rand.Read(r[:])
	subnet := fmt.Sprintf("10.78.%d", r[0])
	if err := run(ctx, "ip", "netns", "add", b.swNS); err != nil {
		return err
	}
	if err := runAll(ctx, [][]string{
		{"ip", "-n", b.swNS, "link", "set", "lo", "up"},
		{"ip", "-n", b.swNS, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", b.swNS, "link", "set", "br0", "up"},
	}); err != nil {
		return err
	}
	for i := 0; i < b.opts.Hosts; i++ {
		letter := string(rune('a' + i))
		h := &Host{
			bed: b, Name: "host" + letter, Index: i, NS: "gwtb-" + b.ID + "-" + letter,
			IP: fmt.Sprintf("%s.%d", subnet, i+1), Dir: filepath.Join(b.Dir, "host"+letter), Port: 8443,
			swVeth: fmt.Sprintf("tb%s%ds", b.ID[:4], i), hostVeth: fmt.Sprintf("tb%s%dh", b.ID[:4], i),
		}
		h.StateDir = filepath.Join(h.Dir, "state")
		h.Socket = filepath.Join(h.Dir, "godwit.sock")
		b.Hosts = append(b.Hosts, h)
		if err := h.setUp(ctx, subnet); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	// libvirtd probes QEMU at first start; do the hosts in parallel.
	errs := make(chan error, len(b.Hosts))
	for _, h := range b.Hosts {
		go func(h *Host) { errs <- h.StartLibvirtd(ctx) }(h)
	}
	for range b.Hosts {
		if err := <-errs; err != nil {
			return err
		}
	}
	for _, h := range b.Hosts {
		if err := h.StartDaemon(ctx); err != nil {
			return err
		}
	}
	b.logf("%d hosts up in %s (shared storage %s)", len(b.Hosts), b.Dir, b.Shared)
	return nil
}

// setUp makes the host's namespaces, link and private libvirt directories.
func (h *Host) setUp(ctx context.Context, subnet string) error {
	for _, d := range []string{"run", "lib/images", "cache/qemu", "log/qemu", "etc/qemu", "state", "pki"} {
		if err := os.MkdirAll(filepath.Join(h.Dir, d), 0o755); err != nil {
			return err
		}
	}
	os.Chmod(h.Dir, 0o711)
	// A warm capabilities cache saves each libvirtd seconds of probing.
	if caps, _ := filepath.Glob("/var/cache/libvirt/qemu/capabilities/*.xml"); len(caps) > 0 {
		dst := filepath.Join(h.Dir, "cache/qemu/capabilities")
		os.MkdirAll(dst, 0o755)
		for _, c := range caps {
			if data, err := os.ReadFile(c); err == nil {
				os.WriteFile(filepath.Join(dst, filepath.Base(c)), data, 0o644)
			}
		}
	}
	hosts := "127.0.0.1 localhost\n"
	for _, o := range h.bed.Hosts {
		hosts += fmt.Sprintf("%s %s\n", o.IP, o.Name)
	}
	for i := len(h.bed.Hosts); i < h.bed.opts.Hosts; i++ {
		hosts += fmt.Sprintf("%s.%d host%c\n", subnet, i+1, 'a'+i)
	}
	files := map[string]string{
		"hosts": hosts,
		"etc/libvirtd.conf": fmt.Sprintf(`listen_tls = 0
listen_tcp = %d
auth_tcp = "none"
listen_addr = "%s"
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
host_uuid = "5a3e8d2c-0b1f-4c6e-9a7d-%s%06d"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
`, boolInt(h.bed.opts.LibvirtTCP), h.IP, h.bed.ID, h.Index+1),
		"etc/qemu.conf": fmt.Sprintf(`user = "root"
group = "root"
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
namespaces = [ ]
migration_address = "%s"
migration_host = "%s"
migrate_tls_x509_cert_dir = "%s"
`, h.IP, h.IP, filepath.Join(h.Dir, "pki")),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(h.Dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	b := h.bed
	if err := b.rec.Update(func(r *sweep.Record) {
		r.Netns = append(r.Netns, h.NS)
		r.PIDFiles = append(r.PIDFiles, h.pidFiles()...)
	}); err != nil {
		return err
	}
	if err := runAll(ctx, [][]string{
		{"ip", "netns", "add", h.NS},
		{"ip", "-n", h.NS, "link", "set", "lo", "up"},
		{"ip", "link", "add", h.hostVeth, "netns", h.NS, "type", "veth", "peer", "name", h.swVeth, "netns", b.swNS},
		{"ip", "-n", h.NS, "link", "set", h.hostVeth, "name", "eth0"},
		{"ip", "-n", h.NS, "addr", "add", h.IP + "/24", "dev", "eth0"},
		{"ip", "-n", h.NS, "link", "set", "eth0", "up"},
		{"ip", "-n", b.swNS, "link", "set", h.swVeth, "master", "br0"},
		{"ip", "-n", b.swNS, "link", "set", h.swVeth, "up"},
	}); err != nil {
		return err
	}
	// The anchor holds the mount and UTS namespaces; every process of the
	// host joins them with nsenter.
	script := fmt.Sprintf(`set -e
hostname %s
mount --bind %[2]s/run /run/libvirt
mount --bind %[2]s/lib /var/lib/libvirt
mount --bind %[2]s/etc /etc/libvirt
mount --bind %[2]s/cache /var/cache/libvirt
mount --bind %[2]s/log /var/log/libvirt
mount --bind %[2]s/hosts /etc/hosts
mount --bind %[2]s/state %[3]s
echo ready
exec sleep infinity`, h.Name, h.Dir, HostStateDir)
	for _, d := range []string{"/run/libvirt", "/var/lib/libvirt", "/etc/libvirt", "/var/cache/libvirt", "/var/log/libvirt", HostStateDir} {
		os.MkdirAll(d, 0o755)
	}
	h.anchor = exec.Command("ip", "netns", "exec", h.NS, "unshare", "-m", "-u", "--propagation", "private", "sh", "-c", script)
	out, err := h.anchor.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	h.anchor.Stderr = &stderr
	if err := h.anchor.Start(); err != nil {
		return err
	}
	// ip netns exec, unshare and the script's last line exec in place.
	if err := b.rec.AddProc("anchor", h.anchor.Process.Pid, []string{"sleep", "infinity"}); err != nil {
		return err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		return fmt.Errorf("namespace anchor: %q %v %s", line, err, stderr.String())
	}
	return nil
}

// pidFiles are where the host's libvirtd writes the pid files of the
// processes it starts, and what those are; and the pid file of the
// daemon's fence guard (its own session: a daemon killed leaves it).
func (h *Host) pidFiles() []sweep.PIDFile {
	return []sweep.PIDFile{
		{Glob: filepath.Join(h.Dir, "run", "network", "*.pid"), Comms: []string{"dnsmasq", "radvd"}},
		{Glob: filepath.Join(h.Dir, "run", "qemu", "*.pid"), Comms: []string{"qemu-system"}},
		{Glob: h.GuardPIDFile(), Comms: []string{h.bed.godwitComm()}},
	}
}

// GuardPIDFile is the pid file of the daemon's fence guard.
func (h *Host) GuardPIDFile() string { return filepath.Join(h.StateDir, "fence-guard.pid") }

// GuardLog is the fence guard's log.
func (h *Host) GuardLog() string {
	b, _ := os.ReadFile(filepath.Join(h.StateDir, "fence-guard.log"))
	return string(b)
}

// godwitComm is the kernel's name (comm) of a godwit process: its
// binary's name, cut to 15 bytes.
func (b *Bed) godwitComm() string {
	c := filepath.Base(b.opts.Godwit)
	if len(c) > 15 {
		c = c[:15]
	}
	return c
}

// startRecorded starts a command of Command and records it; nsenter execs
// in place, so the process then runs what follows "--".
func (h *Host) startRecorded(role string, cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	argv := cmd.Args
	if i := slices.Index(argv, "--"); i >= 0 {
		argv = argv[i+1:]
	}
	return h.bed.rec.AddProc(role, cmd.Process.Pid, argv)
}

// Command returns a command that runs inside the host's namespaces.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	pid := fmt.Sprint(h.anchor.Process.Pid)
	return exec.Command("nsenter", append([]string{"-t", pid, "-m", "-n", "-u", "--", name}, args...)...)
}

// Run runs a command inside the host and returns its combined output.
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := h.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Virsh runs virsh against the host's own libvirtd.
func (h *Host) Virsh(args ...string) (string, error) {
	out, err := h.Run(context.Background(), "virsh", append([]string{"-q", "-c", "qemu:///system"}, args...)...)
	return strings.TrimSpace(out), err
}

// StartLibvirtd starts the host's libvirtd and waits until it answers.
func (h *Host) StartLibvirtd(ctx context.Context) error {
	args := []string{"--pid-file", filepath.Join(h.Dir, "libvirtd.pid")}
	if h.bed.opts.LibvirtTCP {
		args = append(args, "--listen")
	}
	h.libvirtd = h.Command("libvirtd", args...)
	logf, err := os.OpenFile(filepath.Join(h.Dir, "libvirtd.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	h.libvirtd.Stdout, h.libvirtd.Stderr = logf, logf
	if err := h.startRecorded("libvirtd", h.libvirtd); err != nil {
		logf.Close()
		return err
	}
	logf.Close()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if _, err := h.Virsh("uri"); err == nil {
			// A fresh libvirtd probes QEMU on first use; do it now, while
			// the other hosts start too.
			_, _ = h.Virsh("domcapabilities", "--virttype", "qemu")
			return nil
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(h.Dir, "libvirtd.out"))
			return fmt.Errorf("%s: libvirtd did not answer within 90s: %s", h.Name, strings.TrimSpace(string(out)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// StopLibvirtd stops the host's libvirtd (SIGKILL: a crash).
func (h *Host) StopLibvirtd(sig syscall.Signal) {
	if h.libvirtd == nil || h.libvirtd.Process == nil {
		return
	}
	_ = h.libvirtd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = h.libvirtd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = h.libvirtd.Process.Kill()
		<-done
	}
	_ = h.bed.rec.DropProc(h.libvirtd.Process.Pid)
	h.libvirtd = nil
}

// StartDaemon starts the host's godwit daemon and waits until it answers.
func (h *Host) StartDaemon(ctx context.Context) error {
	args := append([]string{"daemon", "--name", h.Name, "--state-dir", HostStateDir, "--socket", h.Socket,
		"--listen", fmt.Sprintf("%s:%d", h.IP, h.Port), "--accel", "tcg", "--qemu-tls-dir", filepath.Join(h.Dir, "pki")}, h.bed.opts.DaemonArgs...)
	if h.bed.opts.SharedPool {
		args = append(args, "--pool", "shared", "--pool-path", filepath.Join(h.bed.Shared, "pool"), "--pool-shared")
	}
	h.daemon = h.Command(h.bed.opts.Godwit, args...)
	logf, err := os.OpenFile(h.DaemonLogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	h.daemon.Stdout, h.daemon.Stderr = logf, logf
	if err := h.startRecorded("daemon", h.daemon); err != nil {
		logf.Close()
		return err
	}
	logf.Close()
	h.daemonDone = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(h.daemon, h.daemonDone)
	if h.C == nil {
		if h.C, err = client.New(client.Options{Socket: h.Socket}); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		host, err := h.C.Host(cctx)
		cancel()
		if err == nil && host.Libvirt.Connected {
			return nil
		}
		select {
		case <-h.daemonDone:
			return fmt.Errorf("%s: the godwit daemon exited at start; log %s:\n%s", h.Name, h.DaemonLogPath(), h.DaemonLog())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: the godwit daemon did not come up within 60s (%v)", h.Name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// StopDaemon stops the host's godwit daemon: SIGTERM, or SIGKILL (a crash).
func (h *Host) StopDaemon(sig syscall.Signal) {
	if h.daemon == nil {
		return
	}
	_ = h.daemon.Process.Signal(syscall.SIGCONT) // a stopped one must run to stop
	_ = h.daemon.Process.Signal(sig)
	select {
	case <-h.daemonDone:
	case <-time.After(30 * time.Second):
		_ = h.daemon.Process.Kill()
		<-h.daemonDone
	}
	_ = h.bed.rec.DropProc(h.daemon.Process.Pid)
	h.daemon = nil
}

// SignalDaemon sends sig to the host's daemon (SIGSTOP: it hangs;
// SIGCONT: it goes on).
func (h *Host) SignalDaemon(sig syscall.Signal) error {
	if h.daemon == nil {
		return fmt.Errorf("%s: no daemon runs", h.Name)
	}
	return h.daemon.Process.Signal(sig)
}

// DaemonLogPath is where the host's daemon logs.
func (h *Host) DaemonLogPath() string { return filepath.Join(h.Dir, "daemon.log") }

// DaemonLog returns the daemon's log.
func (h *Host) DaemonLog() string {
	b, _ := os.ReadFile(h.DaemonLogPath())
	return string(b)
}

// CLI runs the godwit command line against this host's daemon.
func (h *Host) CLI(args ...string) (string, error) {
	cmd := exec.Command(h.bed.opts.Godwit, args...)
	cmd.Env = append(os.Environ(), "GODWIT_SOCKET="+h.Socket)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Shape limits the host's link, both ways, to rate (e.g. "100mbit").
func (h *Host) Shape(rate string) error {
	b := h.bed
	return runAll(context.Background(), [][]string{
		{"ip", "netns", "exec", b.swNS, "tc", "qdisc", "replace", "dev", h.swVeth, "root", "tbf", "rate", rate, "burst", "256kb", "latency", "100ms"},
		{"ip", "netns", "exec", h.NS, "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", rate, "burst", "256kb", "latency", "100ms"},
	})
}

// Unshape removes the rate limit.
func (h *Host) Unshape() error {
	b := h.bed
	_ = run(context.Background(), "ip", "netns", "exec", b.swNS, "tc", "qdisc", "del", "dev", h.swVeth, "root")
	_ = run(context.Background(), "ip", "netns", "exec", h.NS, "tc", "qdisc", "del", "dev", "eth0", "root")
	return nil
}

// Cut takes the host's link down: it can reach no other host.
func (h *Host) Cut() error {
	return run(context.Background(), "ip", "-n", h.bed.swNS, "link", "set", h.swVeth, "down")
}

// Restore brings the host's link back.
func (h *Host) Restore() error {
	return run(context.Background(), "ip", "-n", h.bed.swNS, "link", "set", h.swVeth, "up")
}

// Join makes every pair of hosts peers (godwit host token + host add).
func (b *Bed) Join(ctx context.Context) error {
	for i, a := range b.Hosts {
		for _, o := range b.Hosts[i+1:] {
			tok, err := o.C.CreateJoinToken(ctx, 10*time.Minute)
			if err != nil {
				return fmt.Errorf("token on %s: %w", o.Name, err)
			}
			if _, err := a.C.AddPeer(ctx, api.PeerAdd{Name: o.Name, URL: o.URL(), Token: tok.Token}); err != nil {
				return fmt.Errorf("%s joins %s: %w", a.Name, o.Name, err)
			}
		}
	}
	return nil
}

// Cluster forms a cluster of the bed's hosts with the command line, as a
// user would: 'cluster init' on the first host, then for each other host
// in turn a 'host token' on the first and 'cluster join' with it (a
// cluster takes one joining host at a time). It returns how long each
// join took.
func (b *Bed) Cluster(ctx context.Context) ([]time.Duration, error) {
	first := b.Hosts[0]
	if out, err := first.CLI("cluster", "init"); err != nil {
		return nil, fmt.Errorf("cluster init on %s: %v: %s", first.Name, err, out)
	}
	var took []time.Duration
	for _, h := range b.Hosts[1:] {
		if err := ctx.Err(); err != nil {
			return took, err
		}
		tok, err := first.CLI("host", "token", "-q")
		if err != nil {
			return took, fmt.Errorf("host token on %s: %v: %s", first.Name, err, tok)
		}
		t0 := time.Now()
		if out, err := h.CLI("cluster", "join", first.URL(), "--token", strings.TrimSpace(tok)); err != nil {
			return took, fmt.Errorf("cluster join of %s: %v: %s", h.Name, err, out)
		}
		took = append(took, time.Since(t0))
		b.logf("%s joined the cluster in %s", h.Name, took[len(took)-1].Round(time.Millisecond))
	}
	return took, nil
}

// Down stops everything the bed started, by PID, and removes it.
func (b *Bed) Down() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, h := range b.Hosts {
		h.StopDaemon(syscall.SIGTERM)
		// Networks first: libvirtd spawned a dnsmasq for each, which would
		// outlive it (each holds an inotify instance; 128 leak and the
		// next libvirtd cannot start).
		if h.libvirtd != nil {
			if out, err := h.Virsh("net-list", "--name"); err == nil {
				for _, n := range strings.Fields(out) {
					_, _ = h.Virsh("net-destroy", n)
				}
			}
		}
		// What the host's libvirtd started and left: its dnsmasqs and,
		// for the guests, the QEMUs (checked to be this host's).
		own := sweep.Record{Dir: h.Dir, Netns: []string{h.NS}, PIDFiles: h.pidFiles()}
		procs, _ := own.PIDFileProcs()
		for _, p := range procs {
			sig := syscall.SIGTERM
			// A fence guard ends by a stand-down or SIGKILL only.
			if strings.HasPrefix(p.Role, "qemu-system") || p.Role == b.godwitComm() {
				sig = syscall.SIGKILL
			}
			_ = syscall.Kill(p.PID, sig)
		}
		h.StopLibvirtd(syscall.SIGTERM)
		if h.anchor != nil && h.anchor.Process != nil {
			_ = h.anchor.Process.Kill()
			_ = h.anchor.Wait()
		}
		_ = run(context.Background(), "ip", "netns", "del", h.NS)
	}
	_ = run(context.Background(), "ip", "netns", "del", b.swNS)
	os.RemoveAll(b.Dir)
	b.logf("down")
}

// QEMUs returns the PIDs of the QEMU processes of vm that run in this host
// (in its mount namespace, where its libvirtd starts them).
func (h *Host) QEMUs(vm string) []int {
	if h.anchor == nil || h.anchor.Process == nil {
		return nil
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", h.anchor.Process.Pid))
	if err != nil {
		return nil
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var out []int
	for _, p := range procs {
		var pid int
		if _, err := fmt.Sscan(filepath.Base(p), &pid); err != nil {
			continue
		}
		comm, _ := os.ReadFile(p + "/comm")
		if !strings.HasPrefix(string(comm), "qemu-system") {
			continue
		}
		if n, _ := os.Readlink(p + "/ns/mnt"); n != ns {
			continue
		}
		cmdline, _ := os.ReadFile(p + "/cmdline")
		if strings.Contains(string(cmdline), "guest="+vm+",") || strings.Contains(string(cmdline), "guest="+vm+"\x00") {
			out = append(out, pid)
		}
	}
	return out
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func runAll(ctx context.Context, cmds [][]string) error {
	for _, c := range cmds {
		if err := run(ctx, c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FreePort is a TCP port free on this machine (for tests).
func FreePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
