package sweep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"libvirt.org/go/libvirtxml"
)

// Runner runs a program and returns its combined output.
type Runner func(ctx context.Context, name string, args ...string) (string, error)

// Options say what to sweep.
type Options struct {
	// Dirs are the run directories to look at; none: those DefaultGlobs match.
	Dirs []string
	// Out gets a line per thing removed, and per directory left alone.
	Out io.Writer
	// Run runs virsh, ip, ovs-vsctl and losetup (nil: the real programs).
	Run Runner
	// Wait is how long a process has to exit after each signal (5s).
	Wait time.Duration
	// Orphans, a glob of e2e run directories (E2EGlob), also sweeps what
	// the system libvirtd holds of such runs whose directory is gone.
	Orphans string
}

// Sweep removes what each directory's record names when the run that
// wrote it is gone, and then the directory. It returns how many
// directories it removed; the error joins what it could not remove.
func Sweep(ctx context.Context, o Options) (int, error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Run == nil {
		o.Run = run
	}
	if o.Wait == 0 {
		o.Wait = 5 * time.Second
	}
	dirs := o.Dirs
	if len(dirs) == 0 {
		for _, g := range DefaultGlobs {
			m, _ := filepath.Glob(g)
			dirs = append(dirs, m...)
		}
	}
	n := 0
	var errs []error
	for _, dir := range dirs {
		s := &sweeper{o: o, dir: filepath.Clean(dir)}
		if s.sweep(ctx) {
			n++
		}
		errs = append(errs, s.errs...)
	}
	if o.Orphans != "" {
		errs = append(errs, orphans(ctx, o)...)
	}
	return n, errors.Join(errs...)
}

// orphans sweeps what the system libvirtd still holds of e2e runs whose
// directory is gone (removed by hand, or with /var/tmp on a new machine):
// no record is left to read, so a pool whose target lies below a missing
// run directory stands for the run; its daemon named its networks with
// the pool's name and a dash, and its domains have files below the dir.
func orphans(ctx context.Context, o Options) []error {
	var errs []error
	lister := &sweeper{o: o, dir: "libvirt"}
	out, err := lister.virsh(ctx, "pool-list", "--all", "--name")
	if err != nil {
		return nil // no system libvirtd: nothing of it to sweep
	}
	for _, pool := range strings.Fields(out) {
		x, err := lister.virsh(ctx, "pool-dumpxml", pool)
		var p libvirtxml.StoragePool
		if err != nil || p.Unmarshal(x) != nil || p.Target == nil {
			continue
		}
		dir := runDirOf(p.Target.Path, o.Orphans)
		if dir == "" {
			continue
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			continue // there, so Sweep read its record (or left it alone)
		}
		s := &sweeper{o: o, dir: dir, rec: Record{Kind: KindE2E, Dir: dir, Pool: pool, NetPrefix: pool}}
		s.logf("its directory is gone; sweeping what libvirt holds of it (pool %s)", pool)
		s.domains(ctx)
		s.networks(ctx)
		s.pools(ctx)
		errs = append(errs, s.errs...)
	}
	return errs
}

// runDirOf returns the run directory (glob matches it) that path lies
// in, or "".
func runDirOf(path, glob string) string {
	for d := filepath.Clean(path); d != "/" && d != "."; d = filepath.Dir(d) {
		if ok, _ := filepath.Match(glob, d); ok {
			return d
		}
	}
	return ""
}

type sweeper struct {
	o    Options
	dir  string
	rec  Record
	own  map[int]bool // rec's processes that ran when the sweep began
	errs []error
}

func (s *sweeper) logf(format string, args ...any) {
	fmt.Fprintf(s.o.Out, "sweep: %s: %s\n", s.dir, fmt.Sprintf(format, args...))
}

func (s *sweeper) fail(format string, args ...any) {
	err := fmt.Errorf("%s: %s", s.dir, fmt.Sprintf(format, args...))
	s.errs = append(s.errs, err)
	fmt.Fprintf(s.o.Out, "sweep: %v\n", err)
}

// sweep removes one directory's leftovers; it reports whether it removed
// the directory.
func (s *sweeper) sweep(ctx context.Context) bool {
	rec, err := Read(s.dir)
	switch {
	case errors.Is(err, ErrNoRecord):
		s.logf("left alone: %v (not made by a run that records)", err)
		return false
	case err != nil:
		s.logf("left alone: %v", err)
		return false
	case filepath.Clean(rec.Dir) != s.dir:
		s.logf("left alone: the record is of %s", rec.Dir)
		return false
	case rec.Owner.Running():
		s.logf("left alone: its run (pid %d) is still going", rec.Owner.PID)
		return false
	}
	s.rec = rec
	// Which recorded processes run, before any is stopped: a daemon the
	// next step kills may still be exiting when the pid files are read
	// (no memory, so no command line: not Running, not yet a zombie), and
	// a pid file naming it must not make it a stranger (TestSweepDeadRun
	// printed a killed daemon twice so under load).
	s.own = rec.running()
	// The daemons first (they would recreate or restart what goes next),
	// then what the run's libvirtds started, then the other processes,
	// newest first: libvirtds before the namespace anchors.
	s.stopProcs(func(p Proc) bool { return p.Role == "daemon" })
	s.stopPIDFiles()
	s.stopProcs(func(p Proc) bool { return p.Role != "daemon" })
	if rec.Kind == KindE2E {
		s.domains(ctx)
		s.networks(ctx)
		s.pools(ctx)
	}
	// After the processes: a setting like vm.nr_hugepages goes back only
	// once the QEMUs that use the pages are gone.
	for _, r := range rec.Restores {
		if err := os.WriteFile(r.Path, []byte(r.Value), 0o644); err != nil {
			s.fail("write back %s: %v", r.Path, err)
		} else {
			s.logf("wrote %q back to %s", r.Value, r.Path)
		}
	}
	mounted := s.unmount()
	s.loops(ctx)
	for _, br := range rec.OVSBridges {
		s.removeIf(ctx, "Open vSwitch bridge "+br, []string{"ovs-vsctl", "--timeout=10", "br-exists", br}, []string{"ovs-vsctl", "--timeout=10", "del-br", br})
	}
	for _, l := range rec.Links {
		s.removeIf(ctx, "link "+l, []string{"ip", "link", "show", "dev", l}, []string{"ip", "link", "del", l})
	}
	for _, ns := range rec.Netns {
		s.removeIf(ctx, "network namespace "+ns, []string{"ip", "netns", "pids", ns}, []string{"ip", "netns", "del", ns})
	}
	if mounted {
		s.fail("not removed: something is still mounted below it")
		return false
	}
	if err := os.RemoveAll(s.dir); err != nil {
		s.fail("remove: %v", err)
		return false
	}
	s.logf("removed the directory")
	return true
}

// stopProcs stops the recorded processes that pick selects, newest first,
// each only while it is still the process recorded.
func (s *sweeper) stopProcs(pick func(Proc) bool) {
	for i := len(s.rec.Procs) - 1; i >= 0; i-- {
		p := s.rec.Procs[i]
		if !pick(p) || !p.Running() {
			continue
		}
		if err := stop(p, s.o.Wait); err != nil {
			s.fail("%v", err)
			continue
		}
		s.logf("killed %s", p)
	}
}

func (s *sweeper) stopPIDFiles() {
	procs, strangers := s.rec.pidFileProcs(s.own)
	for _, st := range strangers {
		s.logf("left alone: %s", st)
	}
	for _, p := range procs {
		if err := stop(p, s.o.Wait); err != nil {
			s.fail("%v", err)
			continue
		}
		s.logf("killed %s", p)
	}
}

// PIDFileProcs returns the living processes that the record's pid files
// name and that belong to its run: their comm starts with one of the file's Comms
// and their command line mentions the run's directory or they run in one
// of its network namespaces. strangers says which named PIDs failed that.
// A file naming one of the record's own processes (libvirtd's driver.pid
// names libvirtd) is neither: that process is the record's.
func (rec Record) PIDFileProcs() (procs []Proc, strangers []string) {
	return rec.pidFileProcs(rec.running())
}

// running are the PIDs of the record's processes that still run.
func (rec Record) running() map[int]bool {
	own := map[int]bool{}
	for _, p := range rec.Procs {
		own[p.PID] = p.Running()
	}
	return own
}

// pidFileProcs is PIDFileProcs with the record's own processes given.
func (rec Record) pidFileProcs(own map[int]bool) (procs []Proc, strangers []string) {
	for _, pf := range rec.PIDFiles {
		files, _ := filepath.Glob(pf.Glob)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
			if err != nil || pid <= 1 || own[pid] {
				continue
			}
			st, err := readStat(pid)
			if err != nil || st.state == 'Z' {
				continue // gone already
			}
			comm := readComm(pid)
			cmdline := readCmdline(pid)
			mine := strings.Contains(strings.Join(cmdline, " "), rec.Dir) || inNetns(pid, rec.Netns)
			named := slices.ContainsFunc(pf.Comms, func(c string) bool { return strings.HasPrefix(comm, c) })
			if !named || !mine {
				strangers = append(strangers, fmt.Sprintf("pid %d of %s is %q, not a %s of this run", pid, f, comm, strings.Join(pf.Comms, " or ")))
				continue
			}
			procs = append(procs, Proc{Role: comm, PID: pid, Start: st.start, Cmdline: cmdline})
		}
	}
	return procs, strangers
}

func (s *sweeper) virsh(ctx context.Context, args ...string) (string, error) {
	return s.o.Run(ctx, "virsh", append([]string{"-q", "-c", "qemu:///system"}, args...)...)
}

// domains destroys and undefines the system libvirtd's domains that have
// a disk (or kernel, initrd, NVRAM) below the directory.
func (s *sweeper) domains(ctx context.Context) {
	out, err := s.virsh(ctx, "list", "--all", "--name")
	if err != nil {
		s.fail("list domains: %v", err)
		return
	}
	for _, name := range strings.Fields(out) {
		x, err := s.virsh(ctx, "dumpxml", name)
		if err != nil {
			continue // gone meanwhile
		}
		file := domainFileUnder(x, s.dir)
		if file == "" {
			continue
		}
		_, _ = s.virsh(ctx, "destroy", name) // fails when it is not running
		if _, err := s.virsh(ctx, "undefine", name, "--managed-save", "--snapshots-metadata", "--checkpoints-metadata", "--nvram"); err != nil {
			if _, err := s.virsh(ctx, "undefine", name); err != nil {
				s.fail("undefine domain %s: %v", name, err)
				continue
			}
		}
		s.logf("destroyed and undefined domain %s (%s)", name, file)
	}
}

// domainFileUnder returns a file of the domain below dir, or "".
func domainFileUnder(domXML, dir string) string {
	var d libvirtxml.Domain
	if d.Unmarshal(domXML) != nil {
		return ""
	}
	var files []string
	if d.Devices != nil {
		for _, disk := range d.Devices.Disks {
			if src := disk.Source; src != nil {
				if src.File != nil {
					files = append(files, src.File.File)
				}
				if src.Block != nil {
					files = append(files, src.Block.Dev)
				}
			}
		}
	}
	if d.OS != nil {
		files = append(files, d.OS.Kernel, d.OS.Initrd)
		if d.OS.NVRam != nil {
			files = append(files, d.OS.NVRam.NVRam)
		}
	}
	for _, f := range files {
		if under(f, dir) {
			return f
		}
	}
	return ""
}

// under reports whether path is dir or below it.
func under(path, dir string) bool {
	if !filepath.IsAbs(path) {
		return false
	}
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// networks destroys and undefines the system libvirtd's networks whose
// names start with the recorded prefix and a dash.
func (s *sweeper) networks(ctx context.Context) {
	if s.rec.NetPrefix == "" {
		return
	}
	out, err := s.virsh(ctx, "net-list", "--all", "--name")
	if err != nil {
		s.fail("list networks: %v", err)
		return
	}
	for _, n := range strings.Fields(out) {
		if !strings.HasPrefix(n, s.rec.NetPrefix+"-") {
			continue
		}
		s.destroyUndefine(ctx, "network", "net-", n)
	}
}

// destroyUndefine stops (when active) and undefines a libvirt network or
// pool (prefix "net-", "pool-").
func (s *sweeper) destroyUndefine(ctx context.Context, what, prefix, name string) {
	_, _ = s.virsh(ctx, prefix+"destroy", name) // fails when it is not active
	if _, err := s.virsh(ctx, prefix+"undefine", name); err != nil {
		s.fail("undefine %s %s: %v", what, name, err)
		return
	}
	s.logf("destroyed and undefined %s %s", what, name)
}

// pools destroys and undefines the recorded pool and every pool whose
// target lies below the directory (an fs pool's destroy unmounts it).
func (s *sweeper) pools(ctx context.Context) {
	out, err := s.virsh(ctx, "pool-list", "--all", "--name")
	if err != nil {
		s.fail("list pools: %v", err)
		return
	}
	for _, n := range strings.Fields(out) {
		if n != s.rec.Pool {
			x, err := s.virsh(ctx, "pool-dumpxml", n)
			var p libvirtxml.StoragePool
			if err != nil || p.Unmarshal(x) != nil || p.Target == nil || !under(p.Target.Path, s.dir) {
				continue
			}
		}
		s.destroyUndefine(ctx, "pool", "pool-", n)
	}
}

// mountinfo is this process's mount table.
var mountinfo = "/proc/self/mountinfo"

// unmount unmounts what is mounted below the directory, deepest first;
// it reports whether anything stays mounted.
func (s *sweeper) unmount() bool {
	data, err := os.ReadFile(mountinfo)
	if err != nil {
		s.fail("read %s: %v", mountinfo, err)
		return true
	}
	points := mountsUnder(string(data), s.dir)
	left := false
	for _, mp := range points {
		if err := syscall.Unmount(mp, 0); err != nil {
			if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
				s.fail("unmount %s: %v", mp, err)
				left = true
				continue
			}
		}
		s.logf("unmounted %s", mp)
	}
	return left
}

// mountsUnder returns the mount points of a mountinfo table below dir,
// deepest first.
func mountsUnder(table, dir string) []string {
	var out []string
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if mp := unescapeMount(f[4]); under(mp, dir) {
			out = append(out, mp)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unescapeMount undoes the kernel's octal escapes (\040 is a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// loopBacking is where the kernel says what file backs each loop device.
var loopBacking = "/sys/block/loop*/loop/backing_file"

// loops detaches the loop devices backed by files below the directory.
func (s *sweeper) loops(ctx context.Context) {
	files, _ := filepath.Glob(loopBacking)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		backing := strings.TrimSuffix(strings.TrimSpace(string(data)), " (deleted)")
		if !under(backing, s.dir) {
			continue
		}
		dev := "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(f)))
		if _, err := s.o.Run(ctx, "losetup", "-d", dev); err != nil {
			s.fail("detach %s: %v", dev, err)
			continue
		}
		s.logf("detached loop device %s (%s)", dev, backing)
	}
}

// removeIf runs del when probe says the thing exists, and says so.
func (s *sweeper) removeIf(ctx context.Context, what string, probe, del []string) {
	out, err := s.o.Run(ctx, probe[0], probe[1:]...)
	if err != nil {
		return // not there
	}
	if _, err := s.o.Run(ctx, del[0], del[1:]...); err != nil {
		s.fail("remove %s: %v", what, err)
		return
	}
	if pids := strings.Fields(out); probe[1] == "netns" && len(pids) > 0 {
		s.logf("deleted %s (processes it still held, not recorded, left running: %s)", what, strings.Join(pids, " "))
		return
	}
	s.logf("deleted %s", what)
}

func run(ctx context.Context, name string, args ...string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		// A user's PATH may lack the sbin directories.
		for _, d := range []string{"/usr/sbin", "/sbin"} {
			if _, serr := os.Stat(filepath.Join(d, name)); serr == nil {
				path, err = filepath.Join(d, name), nil
				break
			}
		}
	}
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
