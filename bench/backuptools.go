package bench

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/godwit-project/godwit/internal/backup/repo"
)

// The backup benchmark's other tools: restic and borg (each with its own
// repository next to godwit's, on the same filesystem), and the plain
// copies that bound a full backup of incompressible data.

// tool is one backup program the benchmark runs as a baseline.
type tool struct {
	name    string
	version []string // the arguments that print its version
	dir     string   // its repository
	env     []string // its environment (password, cache and config dirs)
	// init makes an empty repository; backup, restore the commands for
	// image (archive name) into dir.
	init    func() []string
	backup  func(image, archive string) []string
	restore func(archive string) []string
}

// newTools returns restic and borg set up below work. Compression is
// zstd at its fastest for both, as godwit's (restic's "auto" is zstd's
// fastest level; borg's zstd,1). restic always encrypts (AES-256-CTR +
// Poly1305; it has no way not to), borg is told not to (--encryption none),
// godwit does not encrypt. Chunking: restic and borg cut content-defined
// chunks (~1 MiB restic, ~2 MiB borg), godwit fixed 64 KiB ones.
func newTools(work string) []*tool {
	restic := &tool{name: "restic", version: []string{"version"}, dir: filepath.Join(work, "restic-repo")}
	restic.env = []string{"RESTIC_PASSWORD=bench", "RESTIC_CACHE_DIR=" + filepath.Join(work, "restic-cache"), "HOME=" + work}
	restic.init = func() []string {
		return []string{"restic", "init", "-q", "--repo", restic.dir, "--repository-version", "2"}
	}
	restic.backup = func(image, _ string) []string {
		// The parent snapshot (same host and path) is found by restic.
		return []string{"restic", "backup", "-q", "--repo", restic.dir, "--compression", "auto", "--host", "bench", image}
	}
	restic.restore = func(_ string) []string {
		return []string{"restic", "restore", "-q", "latest", "--repo", restic.dir, "--host", "bench", "--target", "."}
	}
	borg := &tool{name: "borg", version: []string{"--version"}, dir: filepath.Join(work, "borg-repo")}
	borg.env = []string{"BORG_BASE_DIR=" + filepath.Join(work, "borg-home"), "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes", "BORG_RELOCATED_REPO_ACCESS_IS_OK=yes", "HOME=" + work}
	borg.init = func() []string { return []string{"borg", "init", "--encryption", "none", borg.dir} }
	borg.backup = func(image, archive string) []string {
		return []string{"borg", "create", "--compression", "zstd,1", borg.dir + "::" + archive, image}
	}
	borg.restore = func(archive string) []string { return []string{"borg", "extract", borg.dir + "::" + archive} }
	return []*tool{restic, borg}
}

// reset empties the tool's repository and caches and makes a new one.
func (t *tool) reset(ctx context.Context) error {
	for _, e := range t.env {
		if k, v, _ := strings.Cut(e, "="); k == "RESTIC_CACHE_DIR" || k == "BORG_BASE_DIR" {
			if err := os.RemoveAll(v); err != nil {
				return err
			}
		}
	}
	if err := os.RemoveAll(t.dir); err != nil {
		return err
	}
	_, err := t.run(ctx, "", t.init())
	return err
}

// measured is one timed command: wall time and the CPU it used (its
// own and its children's, from rusage).
type measured struct {
	wall, cpu time.Duration
	out       string
}

// run runs argv in dir (the tool's environment), then syncs the
// filesystem the repositories are on: the time includes making the
// written bytes durable, as godwit's backup includes its own sync.
func (t *tool) run(ctx context.Context, dir string, argv []string) (measured, error) {
	return runMeasured(ctx, dir, t.env, t.dir, argv)
}

func runMeasured(ctx context.Context, dir string, env []string, syncPath string, argv []string) (measured, error) {
	cmd := Command(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	if err == nil {
		err = syncFS(syncPath)
	}
	m := measured{wall: time.Since(t0), out: out.String()}
	if cmd.ProcessState != nil {
		m.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return m, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(errb.String()))
	}
	return m, nil
}

// syncFS syncs the filesystem path is on (syncfs), walking up to a
// directory that exists.
func syncFS(path string) error {
	for {
		f, err := os.Open(path)
		if err == nil {
			defer f.Close()
			return unix.Syncfs(int(f.Fd()))
		}
		if path == "/" || path == "." {
			return err
		}
		path = filepath.Dir(path)
	}
}

// dropTree evicts every file below dir from the page cache.
func dropTree(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			dropFile(p)
		}
		return nil
	})
}

// dropFile evicts a file's pages (after writing back its dirty ones).
func dropFile(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = unix.Fdatasync(int(f.Fd()))
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// diskUsage is what the files below dir take on disk (allocated blocks,
// like du), the same measure for every tool's repository.
func diskUsage(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil {
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}

// procCPU is a process's CPU time so far (user + system, /proc/PID/stat).
func procCPU(pid int) (time.Duration, error) {
	return statCPU(fmt.Sprintf("/proc/%d/stat", pid))
}

// statCPU reads the CPU time in a /proc stat file (a process's or a
// thread's).
func statCPU(path string) (time.Duration, error) {
	pid := path
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) in parens.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: %q", pid, s)
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: %q", pid, s)
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks, nil
}

// qemuPID is the PID of the QEMU running domain name.
func qemuPID(name string) (int, error) {
	b, err := os.ReadFile("/run/libvirt/qemu/" + name + ".pid")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// hashCompressCost times godwit's two per-chunk computations on sample
// (64 KiB chunks, one core): SHA-256 (repo.Sum) and zstd at the
// repository's setting (SpeedFastest, no frame checksum, as repo.Open
// makes its encoders), in CPU seconds per GiB, and the compressed size's
// share of the sample.
func hashCompressCost(sample []byte, chunk int) (hashS, compS, ratio float64, err error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
	if err != nil {
		return 0, 0, 0, err
	}
	defer enc.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	gib := float64(len(sample)) / (1 << 30)
	t0 := threadCPU()
	for off := 0; off < len(sample); off += chunk {
		repo.Sum(sample[off:min(off+chunk, len(sample))])
	}
	t1 := threadCPU()
	var dst []byte
	var out int
	for off := 0; off < len(sample); off += chunk {
		dst = enc.EncodeAll(sample[off:min(off+chunk, len(sample))], dst[:0])
		out += len(dst)
	}
	t2 := threadCPU()
	return (t1 - t0).Seconds() / gib, (t2 - t1).Seconds() / gib, float64(out) / float64(len(sample)), nil
}

// threadCPU is the calling thread's CPU time (the caller locks its
// goroutine to the thread).
func threadCPU() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

// threadsCPU reads the CPU time of each of a process's threads, by
// thread id, with its name.
func threadsCPU(pid int) map[string]time.Duration {
	m := map[string]time.Duration{}
	des, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return m
	}
	for _, de := range des {
		tid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", pid, tid))
		cpu, err := statCPU(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
		if err != nil {
			continue
		}
		m[fmt.Sprintf("%s[%d]", strings.TrimSpace(string(comm)), tid)] = cpu
	}
	return m
}

// threadsDelta says which threads used CPU between two threadsCPU
// readings, busiest first (threads under 10 ms summed as "others").
func threadsDelta(a, b map[string]time.Duration) string {
	type th struct {
		name string
		d    time.Duration
	}
	var ts []th
	var others time.Duration
	for k, v := range b {
		d := v - a[k]
		if d < 10*time.Millisecond {
			others += d
			continue
		}
		ts = append(ts, th{k, d})
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].d > ts[j].d })
	var parts []string
	for _, t := range ts {
		parts = append(parts, fmt.Sprintf("%s %.2f s", t.name, t.d.Seconds()))
	}
	parts = append(parts, fmt.Sprintf("others %.2f s", others.Seconds()))
	return strings.Join(parts, ", ")
}
