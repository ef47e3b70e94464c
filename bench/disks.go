package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func init() {
	Register(Benchmark{
		Name: "image-create",
		Summary: "create a VM (not started) with a disk on a 2 GiB catalog image: " +
			"qcow2 overlay (godwit's default) vs clone: full (a full copy)",
		Run: runImageCreate,
	})
	Register(Benchmark{
		Name: "volume-transfer",
		Summary: "volume upload and download throughput through the API (libvirt streams, SHA-256 checked) " +
			"vs cat of the same file to /dev/null (the physical limit)",
		Run: runVolumeTransfer,
	})
}

// writeDataFile writes size bytes of incompressible, non-zero data (so no
// copy can skip holes).
func writeDataFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 4<<20)
	rng := rand.NewChaCha8([32]byte{1, 2, 3})
	if _, err := io.CopyN(w, rng, size); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func runImageCreate(ctx context.Context, env *Env) ([]Result, error) {
	if err := env.RequireRoot(); err != nil {
		return nil, err
	}
	if err := env.RequireLibvirt(ctx); err != nil {
		return nil, err
	}
	dir, err := env.SubDir("image")
	if err != nil {
		return nil, err
	}
	d, err := env.StartDaemon(ctx, "--accel", "tcg")
	if err != nil {
		return nil, err
	}
	const size = 2 * api.GiB
	src := filepath.Join(dir, "base.raw")
	env.Logf("writing a %s image of random data", size)
	if err := writeDataFile(src, int64(size)); err != nil {
		return nil, err
	}
	imgName := "bench-ic-" + RandomID(3)
	env.Logf("importing it into the catalog as %s", imgName)
	op, err := d.Client.ImportImage(ctx, api.ImageImport{Name: imgName, Path: src})
	if err != nil {
		return nil, err
	}
	env.Defer("delete image "+imgName, func(ctx context.Context) error { return d.Client.DeleteImage(ctx, imgName) })
	if _, err := d.Client.WaitOperation(ctx, op.ID, nil); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	_ = os.Remove(src)
	guest, err := env.Guest()
	if err != nil {
		return nil, err
	}
	prefix := "bench-ic-" + RandomID(3) + "-"
	create := func(tag, clone string) (time.Duration, error) {
		name := prefix + tag
		spec := api.VMSpec{Name: name, CPUs: 1, Memory: 128 * api.MiB,
			Boot:  &api.Boot{Kernel: guest.Kernel, Initrd: guest.Initrd, Cmdline: "console=ttyS0 quiet"},
			Disks: []api.Disk{{Name: "root", Image: imgName, Clone: clone}}}
		del := d.CreateCleanup(name)
		defer del.Run(ctx)
		t0 := time.Now()
		op, err := d.Client.CreateVM(ctx, spec, client.CreateOptions{})
		if err != nil {
			return 0, err
		}
		if _, err := d.Client.WaitOperation(ctx, op.ID, nil); err != nil {
			return 0, err
		}
		return time.Since(t0), nil
	}
	variants := []struct{ name, clone string }{{"overlay", ""}, {"full", "full"}}
	for _, v := range variants {
		t, err := create("warm-"+v.name, v.clone)
		if err != nil {
			return nil, fmt.Errorf("warm-up %s: %w", v.name, err)
		}
		env.Logf("warm-up %-7s %7.0f ms", v.name, Millis(t))
	}
	times := map[string][]float64{}
	for i := 1; i <= env.Runs; i++ {
		for _, v := range variants {
			t, err := create(fmt.Sprintf("%s-%d", v.name, i), v.clone)
			if err != nil {
				return nil, fmt.Errorf("run %d %s: %w", i, v.name, err)
			}
			times[v.name] = append(times[v.name], Millis(t))
			env.Logf("run %d/%d %-7s %7.0f ms", i, env.Runs, v.name, Millis(t))
		}
	}
	over, full := Median(times["overlay"]), Median(times["full"])
	env.Logf("overlay median %.0f ms of %s, full copy median %.0f ms of %s", over, fmtMillis(times["overlay"]), full, fmtMillis(times["full"]))
	return []Result{{Metric: "create_ms", Godwit: roundMs(over), Baseline: roundMs(full), BaselineName: "clone: full (full copy)"}}, nil
}

func runVolumeTransfer(ctx context.Context, env *Env) ([]Result, error) {
	if err := env.RequireRoot(); err != nil {
		return nil, err
	}
	if err := env.RequireLibvirt(ctx); err != nil {
		return nil, err
	}
	dir, err := env.SubDir("transfer")
	if err != nil {
		return nil, err
	}
	d, err := env.StartDaemon(ctx, "--accel", "tcg")
	if err != nil {
		return nil, err
	}
	const size = 1 * api.GiB
	file := filepath.Join(dir, "data.bin")
	env.Logf("writing %s of random data", size)
	if err := writeDataFile(file, int64(size)); err != nil {
		return nil, err
	}
	pool := d.Host.Pool
	vol := "bench-vt-" + RandomID(3)
	env.Defer("delete volume "+vol, func(ctx context.Context) error {
		err := d.Client.DeleteVolume(ctx, pool, vol)
		if api.Status(err) == 404 {
			return nil
		}
		return err
	})
	mibps := func(t time.Duration) float64 { return float64(size) / float64(api.MiB) / t.Seconds() }
	upload := func() (time.Duration, error) {
		if err := d.Client.DeleteVolume(ctx, pool, vol); err != nil && api.Status(err) != 404 {
			return 0, err
		}
		f, err := os.Open(file)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		t0 := time.Now()
		_, err = d.Client.UploadVolume(ctx, pool, vol, f, int64(size), client.UploadOptions{Create: true})
		return time.Since(t0), err
	}
	download := func() (time.Duration, error) {
		t0 := time.Now()
		dl, err := d.Client.DownloadVolume(ctx, pool, vol)
		if err != nil {
			return 0, err
		}
		if _, err := io.Copy(io.Discard, dl.Body); err != nil {
			return 0, err
		}
		t, err := dl.Finish()
		if err == nil && t.Bytes != int64(size) {
			err = fmt.Errorf("downloaded %d bytes, want %d", t.Bytes, size)
		}
		return time.Since(t0), err
	}
	cat := func() (time.Duration, error) {
		t0 := time.Now()
		cmd := Command(ctx, "sh", "-c", "cat \"$1\" > /dev/null", "cat", file)
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("cat: %v %s", err, out)
		}
		return time.Since(t0), nil
	}
	variants := []struct {
		name string
		run  func() (time.Duration, error)
	}{{"upload", upload}, {"download", download}, {"cat", cat}}
	for _, v := range variants {
		t, err := v.run()
		if err != nil {
			return nil, fmt.Errorf("warm-up %s: %w", v.name, err)
		}
		env.Logf("warm-up %-8s %8.1f MiB/s", v.name, mibps(t))
	}
	rates := map[string][]float64{}
	for i := 1; i <= env.Runs; i++ {
		for _, v := range variants {
			t, err := v.run()
			if err != nil {
				return nil, fmt.Errorf("run %d %s: %w", i, v.name, err)
			}
			rates[v.name] = append(rates[v.name], mibps(t))
			env.Logf("run %d/%d %-8s %8.1f MiB/s", i, env.Runs, v.name, mibps(t))
		}
	}
	up, down, base := Median(rates["upload"]), Median(rates["download"]), Median(rates["cat"])
	return []Result{
		{Metric: "upload_MiBps", Godwit: up, Baseline: base, BaselineName: "cat FILE > /dev/null"},
		{Metric: "download_MiBps", Godwit: down, Baseline: base, BaselineName: "cat FILE > /dev/null"},
	}, nil
}
