package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func init() {
	Register(Benchmark{
		Name: "backup",
		Summary: "2 GiB disk of random data, then 1% rewritten as 256 KiB extents at random offsets: " +
			"godwit incremental vs full (time, bytes read, bytes stored), vs rsync of the image, " +
			"godwit full vs tar of the image, and full throughput vs cat of the image",
		Run: runBackup,
	})
}

const (
	bkDisk    = 2 * api.GiB
	bkExtent  = 256 << 10
	bkChanged = 0.01
	bkPrefix  = "bench-bk-"
)

type backupBench struct {
	env   *Env
	d     *Daemon
	name  string
	image string // the VM's qcow2 volume
	dir   string
}

func runBackup(ctx context.Context, env *Env) ([]Result, error) {
	if err := env.RequireRoot(); err != nil {
		return nil, err
	}
	guest, err := env.Guest()
	if err != nil {
		return nil, err
	}
	if err := env.RequireLibvirt(ctx); err != nil {
		return nil, err
	}
	for _, tool := range []string{"tar", "rsync", "qemu-img", "cat"} {
		if _, err := run(ctx, "sh", "-c", "command -v "+tool); err != nil {
			return nil, fmt.Errorf("%s is not installed (scripts/host-setup.sh installs it)", tool)
		}
	}
	b := &backupBench{env: env, name: bkPrefix + RandomID(3)}
	if b.dir, err = env.SubDir("work"); err != nil {
		return nil, err
	}
	if b.d, err = env.StartDaemon(ctx, "--accel", "tcg"); err != nil {
		return nil, err
	}
	c := b.d.Client

	// The VM: the test guest with one 2 GiB disk full of random data.
	spec := api.VMSpec{
		Name: b.name, CPUs: 1, Memory: 192 * api.MiB,
		Boot:  &api.Boot{Kernel: guest.Kernel, Initrd: guest.Initrd, Cmdline: "console=ttyS0 quiet"},
		Disks: []api.Disk{{Name: "root", Size: bkDisk}},
	}
	b.d.CreateCleanup(b.name)
	if err := b.wait(ctx, func() (api.Operation, error) { return c.CreateVM(ctx, spec, client.CreateOptions{}) }); err != nil {
		return nil, fmt.Errorf("create vm: %w", err)
	}
	v, err := c.GetVM(ctx, b.name)
	if err != nil {
		return nil, err
	}
	b.image = v.Disks[0].Path
	env.Logf("filling %s with %s of random data", b.image, api.Size(bkDisk).Human())
	if err := b.fill(ctx); err != nil {
		return nil, err
	}
	if err := b.wait(ctx, func() (api.Operation, error) { return c.StartVM(ctx, b.name) }); err != nil {
		return nil, fmt.Errorf("start vm: %w", err)
	}
	// Measure a booted, idle guest: a TCG guest booting takes a core for
	// seconds, which the first round would otherwise share with it.
	bootCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	rc, err := c.Console(bootCtx, b.name, client.ConsoleOptions{Follow: true})
	if err == nil {
		_, err = WaitStreamLine(rc, "GODWIT-GUEST-UP")
		rc.Close()
	}
	cancel()
	if err != nil {
		return nil, fmt.Errorf("vm %s never booted: %w", b.name, err)
	}

	imgSize, err := fileSize(b.image)
	if err != nil {
		return nil, err
	}
	// Full, -runs rounds of cat (the physical limit), godwit, tar, each
	// reading a cold image. Every godwit full starts from an empty
	// repository: a second full into the same one would store nothing.
	var catT, tarT, fullT, fullRead, fullStored []float64
	tarFile := filepath.Join(b.dir, "image.tar")
	for i := 1; i <= env.Runs; i++ {
		if i > 1 {
			if err := b.wipeRepo(); err != nil {
				return nil, err
			}
		}
		d, err := b.timed(ctx, fmt.Sprintf("run %d/%d cat", i, env.Runs), "sh", "-c", "cat "+b.image+" > /dev/null")
		if err != nil {
			return nil, err
		}
		catT = append(catT, d.Seconds())
		full, err := b.backup(ctx, true)
		if err != nil {
			return nil, err
		}
		fullT, fullRead, fullStored = append(fullT, full.Stats.Seconds), append(fullRead, float64(full.Stats.BytesRead)), append(fullStored, float64(full.Stats.BytesStored))
		d, err = b.timed(ctx, fmt.Sprintf("run %d/%d tar", i, env.Runs), "tar", "-cf", tarFile, "-C", filepath.Dir(b.image), filepath.Base(b.image))
		if err != nil {
			return nil, err
		}
		os.Remove(tarFile)
		tarT = append(tarT, d.Seconds())
	}
	// rsync's destination: a copy of the image as of the last full backup.
	copyPath := filepath.Join(b.dir, "copy.qcow2")
	if _, err := run(ctx, "cp", "--sparse=always", b.image, copyPath); err != nil {
		return nil, err
	}

	// Incremental, -runs rounds: change 1% (256 KiB extents at random 4
	// KiB-aligned offsets), then godwit's incremental and rsync onto the
	// copy, which then matches the image again for the next round.
	var incT, incRead, incStored, rsyncT, rsyncSentB []float64
	for i := 1; i <= env.Runs; i++ {
		n, err := b.rewrite(ctx)
		if err != nil {
			return nil, err
		}
		env.Logf("run %d/%d: rewrote %d extents of 256 KiB (%s, %.2f%% of the disk)", i, env.Runs, n, api.Size(n*bkExtent).Human(), 100*float64(n*bkExtent)/float64(bkDisk))
		inc, err := b.backup(ctx, false)
		if err != nil {
			return nil, err
		}
		if inc.Mode != "incremental" {
			return nil, fmt.Errorf("backup after the rewrite was %s: %s", inc.Mode, inc.Note)
		}
		incT, incRead, incStored = append(incT, inc.Stats.Seconds), append(incRead, float64(inc.Stats.BytesRead)), append(incStored, float64(inc.Stats.BytesStored))
		b.dropCache(copyPath)
		b.dropCache(b.image)
		t0 := time.Now()
		out, err := run(ctx, "rsync", "--inplace", "--no-whole-file", "--stats", b.image, copyPath)
		d := time.Since(t0)
		if err != nil {
			return nil, err
		}
		rsyncT, rsyncSentB = append(rsyncT, d.Seconds()), append(rsyncSentB, float64(rsyncSent(out)))
		env.Logf("run %d/%d rsync: %.2f s, sent %s (literal data)", i, env.Runs, d.Seconds(), api.Size(rsyncSent(out)).Human())
	}

	m := func(v []float64) float64 { return Median(v) }
	fullRate := float64(imgSize) / m(fullT) / (1 << 20)
	catRate := float64(imgSize) / m(catT) / (1 << 20)
	env.Logf("medians: full %.2f s (%.0f MiB/s), cat %.2f s (%.0f MiB/s), tar %.2f s; incremental %.2f s, rsync %.2f s (rsync/tar %.2f: the book's incremental reads the whole image on both sides)",
		m(fullT), fullRate, m(catT), catRate, m(tarT), m(incT), m(rsyncT), m(rsyncT)/m(tarT))
	timeRatio := m(incT) / m(fullT)
	storedRatio := m(incStored) / m(fullStored)
	env.Logf("targets: incremental <= 5%% of full in time (%.1f%%) and bytes stored (%.1f%%); full >= 0.6x cat's rate (%.2fx)",
		100*timeRatio, 100*storedRatio, fullRate/catRate)
	return []Result{
		{Metric: "incremental_vs_full_time_s", Godwit: m(incT), Baseline: m(fullT), BaselineName: "godwit full"},
		{Metric: "incremental_vs_full_bytes_read", Godwit: m(incRead), Baseline: m(fullRead), BaselineName: "godwit full"},
		{Metric: "incremental_vs_full_bytes_stored", Godwit: m(incStored), Baseline: m(fullStored), BaselineName: "godwit full"},
		{Metric: "incremental_vs_rsync_time_s", Godwit: m(incT), Baseline: m(rsyncT), BaselineName: "rsync --inplace --no-whole-file"},
		{Metric: "incremental_vs_rsync_bytes", Godwit: m(incStored), Baseline: m(rsyncSentB), BaselineName: "rsync literal data"},
		{Metric: "full_vs_tar_time_s", Godwit: m(fullT), Baseline: m(tarT), BaselineName: "tar of the image"},
		{Metric: "full_throughput_MiBps", Godwit: fullRate, Baseline: catRate, BaselineName: "cat of the image"},
	}, nil
}

// wipeRepo empties the daemon's backup repository (it is the
// benchmark's own), so the next full backup writes every chunk again.
func (b *backupBench) wipeRepo() error {
	repo := filepath.Join(b.d.StateDir, "backups")
	for _, pattern := range []string{"backups/*", "index/*", "packs/*/*", "chunks/*/*", "tmp/*"} {
		matches, err := filepath.Glob(filepath.Join(repo, pattern))
		if err != nil {
			return err
		}
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *backupBench) wait(ctx context.Context, start func() (api.Operation, error)) error {
	op, err := start()
	if err != nil {
		return err
	}
	_, err = b.d.Client.WaitOperation(ctx, op.ID, nil)
	return err
}

// fill writes random data over the whole (stopped) volume.
func (b *backupBench) fill(ctx context.Context) error {
	raw := filepath.Join(b.dir, "fill.raw")
	f, err := os.Create(raw)
	if err != nil {
		return err
	}
	defer os.Remove(raw)
	rng := rand.NewChaCha8([32]byte([]byte(RandomID(16))))
	buf := make([]byte, 4<<20)
	for written := 0; written < int(bkDisk); written += len(buf) {
		rng.Read(buf)
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, err = run(ctx, "qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", raw, b.image)
	return err
}

// dropCache evicts a file's pages, so the next read comes from the disk.
func (b *backupBench) dropCache(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = unix.Fdatasync(int(f.Fd()))
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// timed runs a baseline command on a cold image.
func (b *backupBench) timed(ctx context.Context, what string, name string, args ...string) (time.Duration, error) {
	b.dropCache(b.image)
	t0 := time.Now()
	if _, err := run(ctx, name, args...); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	d := time.Since(t0)
	b.env.Logf("%s: %.2f s", what, d.Seconds())
	return d, nil
}

func (b *backupBench) backup(ctx context.Context, full bool) (api.Backup, error) {
	b.dropCache(b.image)
	c := b.d.Client
	op, err := c.CreateBackup(ctx, b.name, api.BackupRequest{Full: full})
	if err != nil {
		return api.Backup{}, err
	}
	op, err = c.WaitOperation(ctx, op.ID, nil)
	if err != nil {
		return api.Backup{}, err
	}
	var bk api.Backup
	if err := json.Unmarshal(op.Result, &bk); err != nil {
		return bk, err
	}
	b.env.Logf("godwit %s backup: %.2f s (%.2f s of it syncing and committing), read %s, stored %s",
		bk.Mode, bk.Stats.Seconds, bk.Stats.CommitSeconds, bk.Stats.BytesRead.Human(), bk.Stats.BytesStored.Human())
	return bk, nil
}

// rewrite writes 1% of the disk as 256 KiB extents of random data at
// random 4 KiB-aligned offsets, through QEMU (qemu-io on the running
// disk), so the dirty bitmap sees them as it would see the guest's writes.
func (b *backupBench) rewrite(ctx context.Context) (int, error) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	data := make([]byte, bkExtent)
	n := int(math.Round(bkChanged * float64(bkDisk) / bkExtent))
	slots := int(bkDisk/4096) - bkExtent/4096
	for i := 0; i < n; i++ {
		// Fresh random bytes for every extent: nothing to deduplicate.
		for k := 0; k < len(data); k += 8 {
			binary.LittleEndian.PutUint64(data[k:], rng.Uint64())
		}
		src := filepath.Join(b.dir, fmt.Sprintf("extent-%d.bin", i))
		if err := os.WriteFile(src, data, 0o644); err != nil {
			return i, err
		}
		off := int64(rng.IntN(slots)) * 4096
		cmd := fmt.Sprintf(`qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend "write -q -s %s %d %d"`, src, off, bkExtent)
		out, err := Virsh(ctx, "qemu-monitor-command", b.name, "--hmp", cmd)
		if err != nil {
			return i, err
		}
		if s := strings.TrimSpace(out); s != "" {
			return i, errors.New("qemu-io: " + s)
		}
	}
	return n, nil
}

var literalRE = regexp.MustCompile(`Literal data: ([\d,]+) bytes`)

func rsyncSent(stats string) int64 {
	m := literalRE.FindStringSubmatch(stats)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
	return n
}

func fileSize(path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
