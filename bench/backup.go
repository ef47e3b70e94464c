package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/backup/repo"
	"github.com/godwit-project/godwit/internal/image"
)

func init() {
	Register(Benchmark{
		Name: "backup",
		Summary: "a 2 GiB disk of random data and a 4 GiB Debian system disk, each then 1% rewritten as 256 KiB extents at random offsets: " +
			"godwit full, incremental and restore vs restic and borg (time, bytes stored), full vs cp and dd of the image (throughput, CPU per GiB), " +
			"incremental vs full and vs rsync of the image",
		Run: runBackup,
	})
}

const (
	bkDisk    = 2 * api.GiB
	bkSysDisk = 4 * api.GiB
	bkExtent  = 256 << 10
	bkChanged = 0.01
	bkPrefix  = "bench-bk-"
)

type backupBench struct {
	env   *Env
	d     *Daemon
	dir   string
	tools []*tool
}

// bkCase is one disk the benchmark backs up: its VM (one disk) and
// what was measured of it, per variant.
type bkCase struct {
	label string // "random", "system": the result lines' metric prefix
	vm    string
	image string // the VM's qcow2 volume
	size  api.Size
	m     map[string][]float64
	last  string // godwit's newest backup of it
}

func (c *bkCase) add(key string, v float64) { c.m[key] = append(c.m[key], v) }
func (c *bkCase) med(key string) float64    { return Median(c.m[key]) }

func runBackup(ctx context.Context, env *Env) ([]Result, error) {
	if err := env.RequireRoot(); err != nil {
		return nil, err
	}
	wanted, err := bkDisks()
	if err != nil {
		return nil, err
	}
	guest, err := env.Guest()
	if err != nil {
		return nil, err
	}
	if err := env.RequireLibvirt(ctx); err != nil {
		return nil, err
	}
	for _, tool := range []string{"rsync", "restic", "borg", "qemu-img", "cat", "cp", "dd"} {
		if _, err := run(ctx, "sh", "-c", "command -v "+tool); err != nil {
			return nil, fmt.Errorf("%s is not installed (scripts/host-setup.sh --bench installs it)", tool)
		}
	}
	b := &backupBench{env: env}
	if b.dir, err = env.SubDir("work"); err != nil {
		return nil, err
	}
	b.tools = newTools(b.dir)
	for _, t := range b.tools {
		v, _ := run(ctx, t.name, t.version...)
		env.Logf("%s: %s", t.name, strings.TrimSpace(strings.SplitN(v, "\n", 2)[0]))
	}
	if b.d, err = env.StartDaemon(ctx, "--accel", "tcg"); err != nil {
		return nil, err
	}
	var sysSrc string
	if wanted["system"] {
		if sysSrc, err = b.systemImage(ctx); err != nil {
			return nil, err
		}
	}
	id := RandomID(3)
	random := &bkCase{label: "random", vm: bkPrefix + id + "-rand", size: bkDisk, m: map[string][]float64{}}
	system := &bkCase{label: "system", vm: bkPrefix + id + "-sys", size: bkSysDisk, m: map[string][]float64{}}
	for _, c := range []*bkCase{random, system} {
		if !wanted[c.label] {
			continue
		}
		fill := func() error { return b.fillRandom(ctx, c.image) }
		what := "random data"
		if c == system {
			fill = func() error {
				_, err := run(ctx, "qemu-img", "convert", "-n", "-f", "qcow2", "-O", "qcow2", sysSrc, c.image)
				return err
			}
			what = "the Debian image " + sysSrc
		}
		if err := b.makeVM(ctx, guest, c, what, fill); err != nil {
			return nil, err
		}
	}
	var results []Result
	for _, c := range []*bkCase{random, system} {
		if !wanted[c.label] {
			continue
		}
		if err := b.measure(ctx, c); err != nil {
			return nil, fmt.Errorf("%s disk: %w", c.label, err)
		}
		results = append(results, b.results(c)...)
	}
	return results, nil
}

// bkDisks reads $GODWIT_BENCH_BACKUP_DISKS, the disks to measure (a
// comma-separated list of random and system; both when unset): one disk
// alone takes half the time, for iterating on it.
func bkDisks() (map[string]bool, error) {
	v := os.Getenv("GODWIT_BENCH_BACKUP_DISKS")
	if v == "" {
		return map[string]bool{"random": true, "system": true}, nil
	}
	m := map[string]bool{}
	for _, d := range strings.Split(v, ",") {
		d = strings.TrimSpace(d)
		if d != "random" && d != "system" {
			return nil, fmt.Errorf("GODWIT_BENCH_BACKUP_DISKS: %q is not a disk (random, system)", d)
		}
		m[d] = true
	}
	return m, nil
}

// makeVM creates c's VM (the test guest, one disk of c.size), fills the
// stopped disk, starts the VM and waits for the guest to be up.
func (b *backupBench) makeVM(ctx context.Context, guest Guest, c *bkCase, what string, fill func() error) error {
	cl := b.d.Client
	spec := api.VMSpec{
		Name: c.vm, CPUs: 1, Memory: 128 * api.MiB,
		Boot:  &api.Boot{Kernel: guest.Kernel, Initrd: guest.Initrd, Cmdline: "console=ttyS0 quiet"},
		Disks: []api.Disk{{Name: "root", Size: c.size}},
	}
	b.d.CreateCleanup(c.vm)
	if err := b.wait(ctx, func() (api.Operation, error) { return cl.CreateVM(ctx, spec, client.CreateOptions{}) }); err != nil {
		return fmt.Errorf("create vm: %w", err)
	}
	v, err := cl.GetVM(ctx, c.vm)
	if err != nil {
		return err
	}
	c.image = v.Disks[0].Path
	b.env.Logf("%s disk: filling %s (%s) with %s", c.label, c.image, c.size.Human(), what)
	if err := fill(); err != nil {
		return err
	}
	if err := b.wait(ctx, func() (api.Operation, error) { return cl.StartVM(ctx, c.vm) }); err != nil {
		return fmt.Errorf("start vm: %w", err)
	}
	// Measure a booted, idle guest: a TCG guest booting takes a core for
	// seconds, which the first round would otherwise share with it.
	bootCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rc, err := cl.Console(bootCtx, c.vm, client.ConsoleOptions{Follow: true})
	if err == nil {
		_, err = WaitStreamLine(rc, "GODWIT-GUEST-UP")
		rc.Close()
	}
	if err != nil {
		return fmt.Errorf("vm %s never booted: %w", c.vm, err)
	}
	return nil
}

// measure runs c's rounds: -runs full rounds (cat, cp, dd, godwit,
// restic, borg, each reading a cold image, each backup into an emptied
// repository: a second full into the same one would store nothing), then
// -runs incremental rounds (rewrite 1%, godwit, restic, borg, rsync), then
// -runs restores of the newest backup (each repository's files evicted
// from the page cache first).
func (b *backupBench) measure(ctx context.Context, c *bkCase) error {
	env := b.env
	repoDir := filepath.Join(b.d.StateDir, "backups")
	copyPath := filepath.Join(b.d.StateDir, "bench-copy.img") // next to the repository, same filesystem
	for i := 1; i <= env.Runs; i++ {
		round := fmt.Sprintf("%s disk, full %d/%d", c.label, i, env.Runs)
		if err := b.wipeRepo(); err != nil {
			return err
		}
		for _, t := range b.tools {
			if err := t.reset(ctx); err != nil {
				return fmt.Errorf("%s init: %w", t.name, err)
			}
		}
		size, err := fileSize(c.image)
		if err != nil {
			return err
		}
		c.add("image", float64(size))
		for _, cp := range []struct{ key, line string }{
			{"cat", "cat " + c.image + " > /dev/null"},
			{"cp", "cp " + c.image + " " + copyPath},
			{"dd", "dd if=" + c.image + " of=" + copyPath + " bs=4M iflag=direct oflag=direct status=none"},
		} {
			dropFile(c.image)
			m, err := runMeasured(ctx, "", nil, copyPath, []string{"sh", "-c", cp.line})
			os.Remove(copyPath)
			if err != nil {
				return fmt.Errorf("%s: %w", round, err)
			}
			c.add(cp.key, m.wall.Seconds())
			env.Logf("%s %s: %.2f s (%.0f MiB/s)", round, cp.key, m.wall.Seconds(), float64(size)/m.wall.Seconds()/(1<<20))
		}
		qpid, err := qemuPID(c.vm)
		if err != nil {
			return err
		}
		d0, _ := procCPU(b.d.PID)
		q0, _ := procCPU(qpid)
		qt0 := threadsCPU(qpid)
		full, err := b.backup(ctx, c, true)
		if err != nil {
			return err
		}
		d1, _ := procCPU(b.d.PID)
		q1, _ := procCPU(qpid)
		env.Logf("%s godwit: %.2f s; QEMU's threads: %s", round, full.Stats.Seconds, threadsDelta(qt0, threadsCPU(qpid)))
		gib := float64(size) / (1 << 30)
		c.add("godwit_full", full.Stats.Seconds)
		c.add("godwit_full_read", float64(full.Stats.BytesRead))
		c.add("godwit_full_stored", float64(diskUsage(repoDir)))
		c.add("godwit_cpu", (d1-d0).Seconds()/gib)
		c.add("qemu_cpu", (q1-q0).Seconds()/gib)
		env.Logf("%s godwit: repository %s on disk; daemon CPU %.2f s (%.2f s/GiB of image), QEMU (NBD export) %.2f s",
			round, api.Size(diskUsage(repoDir)).Human(), (d1 - d0).Seconds(), (d1-d0).Seconds()/gib, (q1 - q0).Seconds())
		for _, t := range b.tools {
			dropFile(c.image)
			m, err := t.run(ctx, "", t.backup(c.image, fmt.Sprintf("full-%d", i)))
			if err != nil {
				return fmt.Errorf("%s: %w", round, err)
			}
			du := diskUsage(t.dir)
			c.add(t.name+"_full", m.wall.Seconds())
			c.add(t.name+"_full_stored", float64(du))
			c.add(t.name+"_cpu", m.cpu.Seconds()/gib)
			env.Logf("%s %s: %.2f s, CPU %.2f s (%.2f s/GiB), repository %s", round, t.name, m.wall.Seconds(), m.cpu.Seconds(), m.cpu.Seconds()/gib, api.Size(du).Human())
		}
	}
	if err := b.cost(c); err != nil {
		return err
	}

	// rsync's destination: a copy of the image as of the last full backup.
	rsyncCopy := filepath.Join(b.dir, "rsync-copy.qcow2")
	if _, err := run(ctx, "cp", "--sparse=always", c.image, rsyncCopy); err != nil {
		return err
	}
	defer os.Remove(rsyncCopy)
	for i := 1; i <= env.Runs; i++ {
		round := fmt.Sprintf("%s disk, incremental %d/%d", c.label, i, env.Runs)
		n, err := b.rewrite(ctx, c)
		if err != nil {
			return err
		}
		env.Logf("%s: rewrote %d extents of 256 KiB (%s, %.2f%% of the disk)", round, n, api.Size(n*bkExtent).Human(), 100*float64(n*bkExtent)/float64(c.size))
		before := diskUsage(repoDir)
		inc, err := b.backup(ctx, c, false)
		if err != nil {
			return err
		}
		if inc.Mode != "incremental" {
			return fmt.Errorf("backup after the rewrite was %s: %s", inc.Mode, inc.Note)
		}
		c.add("godwit_inc", inc.Stats.Seconds)
		c.add("godwit_inc_read", float64(inc.Stats.BytesRead))
		c.add("godwit_inc_stored", float64(diskUsage(repoDir)-before))
		for _, t := range b.tools {
			dropFile(c.image)
			before := diskUsage(t.dir)
			m, err := t.run(ctx, "", t.backup(c.image, fmt.Sprintf("inc-%d", i)))
			if err != nil {
				return fmt.Errorf("%s: %w", round, err)
			}
			grew := diskUsage(t.dir) - before
			c.add(t.name+"_inc", m.wall.Seconds())
			c.add(t.name+"_inc_stored", float64(grew))
			env.Logf("%s %s: %.2f s, repository grew by %s", round, t.name, m.wall.Seconds(), api.Size(grew).Human())
		}
		dropFile(rsyncCopy)
		dropFile(c.image)
		t0 := time.Now()
		out, err := run(ctx, "rsync", "--inplace", "--no-whole-file", "--stats", c.image, rsyncCopy)
		d := time.Since(t0)
		if err != nil {
			return err
		}
		c.add("rsync", d.Seconds())
		c.add("rsync_sent", float64(rsyncSent(out)))
		env.Logf("%s rsync: %.2f s, sent %s (literal data)", round, d.Seconds(), api.Size(rsyncSent(out)).Human())
	}

	for i := 1; i <= env.Runs; i++ {
		round := fmt.Sprintf("%s disk, restore %d/%d", c.label, i, env.Runs)
		d, err := b.restore(ctx, c, fmt.Sprintf("%s-r%d", c.vm, i), repoDir)
		if err != nil {
			return fmt.Errorf("%s: %w", round, err)
		}
		c.add("godwit_restore", d.Seconds())
		env.Logf("%s godwit: %.2f s (backup %s into a new VM)", round, d.Seconds(), c.last)
		for _, t := range b.tools {
			dir := filepath.Join(b.dir, "restore-"+t.name)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			dropTree(t.dir)
			m, err := t.run(ctx, dir, t.restore(fmt.Sprintf("inc-%d", env.Runs)))
			if err == nil {
				err = checkRestored(dir, c.image)
			}
			os.RemoveAll(dir)
			if err != nil {
				return fmt.Errorf("%s %s: %w", round, t.name, err)
			}
			c.add(t.name+"_restore", m.wall.Seconds())
			env.Logf("%s %s: %.2f s", round, t.name, m.wall.Seconds())
		}
	}
	return nil
}

// cost measures hashing and compressing, per GiB on one core, on the
// first 256 MiB of the image (the page cache's copy: CPU only).
func (b *backupBench) cost(c *bkCase) error {
	f, err := os.Open(c.image)
	if err != nil {
		return err
	}
	defer f.Close()
	sample := make([]byte, 256<<20)
	n, err := io.ReadFull(f, sample)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	hashS, compS, ratio, err := hashCompressCost(sample[:n], repo.DefaultChunkSize)
	if err != nil {
		return err
	}
	c.add("hash_cpu", hashS)
	c.add("compress_cpu", compS)
	b.env.Logf("%s disk: on one core, SHA-256 takes %.2f s/GiB and zstd (fastest) %.2f s/GiB of 64 KiB chunks, compressing them to %.0f%% (first %s of the image)",
		c.label, hashS, compS, 100*ratio, api.Size(n).Human())
	return nil
}

// restore restores c's newest godwit backup as VM name, timed from the
// request to the operation's end (the VM defined, its volume written and
// flushed), and deletes that VM again.
func (b *backupBench) restore(ctx context.Context, c *bkCase, name, repoDir string) (time.Duration, error) {
	dropTree(repoDir)
	del := b.d.CreateCleanup(name)
	t0 := time.Now()
	err := b.wait(ctx, func() (api.Operation, error) {
		return b.d.Client.RestoreBackup(ctx, c.last, api.RestoreRequest{As: name})
	})
	d := time.Since(t0)
	if err != nil {
		return d, err
	}
	return d, del.Run(ctx)
}

// checkRestored checks that a tool restored the image (below dir, by its
// path) with the image's size.
func checkRestored(dir, image string) error {
	want, err := fileSize(image)
	if err != nil {
		return err
	}
	got, err := fileSize(filepath.Join(dir, image))
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("restored %d bytes of %s, not %d", got, image, want)
	}
	return nil
}

// results are c's result lines and a progress line on the targets.
func (b *backupBench) results(c *bkCase) []Result {
	m := c.med
	p := c.label + "_"
	mib := m("image") / (1 << 20)
	rate := func(key string) float64 { return mib / m(key) }
	var rs []Result
	fastest := map[string]string{}
	for _, phase := range []string{"full", "inc", "restore"} {
		best := ""
		for _, t := range b.tools {
			if best == "" || m(t.name+"_"+phase) < m(best+"_"+phase) {
				best = t.name
			}
		}
		fastest[phase] = best
	}
	names := map[string]string{"full": "full", "inc": "incremental", "restore": "restore"}
	for _, t := range b.tools {
		for _, phase := range []string{"full", "inc", "restore"} {
			rs = append(rs, Result{Metric: p + names[phase] + "_vs_" + t.name + "_time_s", Godwit: m("godwit_" + phase), Baseline: m(t.name + "_" + phase), BaselineName: t.name})
		}
		for _, phase := range []string{"full", "inc"} {
			rs = append(rs, Result{Metric: p + names[phase] + "_vs_" + t.name + "_stored_bytes", Godwit: m("godwit_" + phase + "_stored"), Baseline: m(t.name + "_" + phase + "_stored"), BaselineName: t.name + "'s repository on disk"})
		}
		rs = append(rs, Result{Metric: p + "full_cpu_vs_" + t.name + "_s_per_GiB", Godwit: m("godwit_cpu"), Baseline: m(t.name + "_cpu"), BaselineName: t.name})
	}
	rs = append(rs,
		Result{Metric: p + "full_vs_cp_MiBps", Godwit: rate("godwit_full"), Baseline: rate("cp"), BaselineName: "cp of the image"},
		Result{Metric: p + "full_vs_dd_direct_MiBps", Godwit: rate("godwit_full"), Baseline: rate("dd"), BaselineName: "dd O_DIRECT of the image"},
		Result{Metric: p + "full_vs_cat_MiBps", Godwit: rate("godwit_full"), Baseline: rate("cat"), BaselineName: "cat of the image"},
		Result{Metric: p + "incremental_vs_full_time_s", Godwit: m("godwit_inc"), Baseline: m("godwit_full"), BaselineName: "godwit full"},
		Result{Metric: p + "incremental_vs_full_bytes_read", Godwit: m("godwit_inc_read"), Baseline: m("godwit_full_read"), BaselineName: "godwit full"},
		Result{Metric: p + "incremental_vs_rsync_time_s", Godwit: m("godwit_inc"), Baseline: m("rsync"), BaselineName: "rsync --inplace --no-whole-file"},
		Result{Metric: p + "incremental_vs_rsync_bytes", Godwit: m("godwit_inc_stored"), Baseline: m("rsync_sent"), BaselineName: "rsync literal data"},
	)
	copyRate := max(rate("cp"), rate("dd"))
	b.env.Logf("%s disk, medians: godwit full %.2f s (%.0f MiB/s), cp %.0f MiB/s, dd %.0f MiB/s, cat %.0f MiB/s; CPU per GiB: daemon %.2f s, QEMU %.2f s, of which hashing %.2f s and compressing %.2f s would be on one core",
		c.label, m("godwit_full"), rate("godwit_full"), rate("cp"), rate("dd"), rate("cat"), m("godwit_cpu"), m("qemu_cpu"), m("hash_cpu"), m("compress_cpu"))
	yes := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	storedOK := true
	for _, t := range b.tools {
		storedOK = storedOK && m("godwit_full_stored") <= m(t.name+"_full_stored")
	}
	f, in, re := fastest["full"], fastest["inc"], fastest["restore"]
	b.env.Logf("%s disk, targets: full >= 1.5x faster than %s (%.2fx): %s; incremental >= 10x faster than %s (%.1fx): %s; restore at least as fast as %s (%.2fx): %s; full stored <= both: %s; full >= 0.85x of the faster copy (%.2fx): %s",
		c.label, f, m(f+"_full")/m("godwit_full"), yes(m(f+"_full")/m("godwit_full") >= 1.5),
		in, m(in+"_inc")/m("godwit_inc"), yes(m(in+"_inc")/m("godwit_inc") >= 10),
		re, m(re+"_restore")/m("godwit_restore"), yes(m("godwit_restore") <= m(re+"_restore")),
		yes(storedOK), rate("godwit_full")/copyRate, yes(rate("godwit_full") >= 0.85*copyRate))
	return rs
}

// systemImage finds a Debian system disk image (what `godwit image build
// debian` makes, 4 GiB): in REPO/.cache/bench, else in the e2e tests'
// cache (/var/cache/godwit-test), else it builds one through the
// benchmark's daemon (minutes) and caches it in REPO/.cache/bench.
func (b *backupBench) systemImage(ctx context.Context) (string, error) {
	key := "debian-" + image.RecipeHash(image.DebianRecipe(image.DefaultSuite, image.DefaultMirror, bkSysDisk))
	own := filepath.Join(b.env.Repo, ".cache", "bench", key, "image.qcow2")
	for _, p := range []string{own, filepath.Join("/var/cache/godwit-test", key, "image.qcow2")} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	b.env.Logf("building a Debian %s image with godwit image build (minutes; cached in %s)", image.DefaultSuite, filepath.Dir(own))
	bctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	name := bkPrefix + "debian-" + RandomID(3)
	if err := b.wait(bctx, func() (api.Operation, error) {
		return b.d.Client.BuildImage(bctx, api.ImageBuild{Name: name, Distro: "debian", Suite: image.DefaultSuite, Size: bkSysDisk})
	}); err != nil {
		return "", fmt.Errorf("image build: %w", err)
	}
	img, err := b.d.Client.GetImage(ctx, name)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(own), 0o755); err != nil {
		return "", err
	}
	if _, err := run(ctx, "cp", img.Path, own+".tmp"); err != nil {
		return "", err
	}
	return own, os.Rename(own+".tmp", own)
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

// fillRandom writes random data over the whole (stopped) volume.
func (b *backupBench) fillRandom(ctx context.Context, image string) error {
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
	_, err = run(ctx, "qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", raw, image)
	return err
}

func (b *backupBench) backup(ctx context.Context, c *bkCase, full bool) (api.Backup, error) {
	dropFile(c.image)
	cl := b.d.Client
	op, err := cl.CreateBackup(ctx, c.vm, api.BackupRequest{Full: full})
	if err != nil {
		return api.Backup{}, err
	}
	op, err = cl.WaitOperation(ctx, op.ID, nil)
	if err != nil {
		return api.Backup{}, err
	}
	var bk api.Backup
	if err := json.Unmarshal(op.Result, &bk); err != nil {
		return bk, err
	}
	c.last = bk.ID
	b.env.Logf("%s disk, godwit %s backup: %.2f s (%.2f s of it syncing and committing), read %s, stored %s",
		c.label, bk.Mode, bk.Stats.Seconds, bk.Stats.CommitSeconds, bk.Stats.BytesRead.Human(), bk.Stats.BytesStored.Human())
	return bk, nil
}

// rewrite writes 1% of the disk as 256 KiB extents of random data at
// random 4 KiB-aligned offsets, through QEMU (qemu-io on the running
// disk), so the dirty bitmap sees them as it would see the guest's writes.
func (b *backupBench) rewrite(ctx context.Context, c *bkCase) (int, error) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	data := make([]byte, bkExtent)
	n := int(math.Round(bkChanged * float64(c.size) / bkExtent))
	slots := int(c.size/4096) - bkExtent/4096
	for i := 0; i < n; i++ {
		// Fresh random bytes for every extent: nothing to deduplicate.
		for k := 0; k < len(data); k += 8 {
			binary.LittleEndian.PutUint64(data[k:], rng.Uint64())
		}
		src := filepath.Join(b.dir, "extent.bin")
		if err := os.WriteFile(src, data, 0o644); err != nil {
			return i, err
		}
		off := int64(rng.IntN(slots)) * 4096
		cmd := fmt.Sprintf(`qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend "write -q -s %s %d %d"`, src, off, bkExtent)
		out, err := Virsh(ctx, "qemu-monitor-command", c.vm, "--hmp", cmd)
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
