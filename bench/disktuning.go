package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func init() {
	Register(Benchmark{
		Name: "disk-tuning",
		Summary: "I/O inside the test guest (dd, O_DIRECT): a disk with io=native and an I/O thread " +
			"vs godwit's default disk (cache=none, QEMU's thread pool); huge pages: see the hugepages benchmark",
		Run: runDiskTuning,
	})
}

const (
	dtDisk    = 128 * api.MiB
	dtMemory  = 256 * api.MiB
	dtTimeout = 4 * time.Minute
)

var ioBenchRE = regexp.MustCompile(`^IOBENCH (\S+) (\d+) ([0-9.]+) ([0-9.]+)`)

// dtWorkloads are the guest's workloads, and how a result becomes a rate:
// MiB/s for the sequential ones, operations/s for the random reads.
var dtWorkloads = []struct{ name, metric string }{
	{"seq-write", "seq_write_mib_s"}, {"seq-read", "seq_read_mib_s"}, {"rand-read-4k", "rand_read_4k_iops"},
}

func runDiskTuning(ctx context.Context, env *Env) ([]Result, error) {
	if err := env.RequireRoot(); err != nil {
		return nil, err
	}
	guest, err := env.Guest()
	if err != nil {
		return nil, err
	}
	d, err := env.StartDaemon(ctx, "--accel", "tcg")
	if err != nil {
		return nil, err
	}
	prefix := "bench-dt-" + RandomID(6) + "-"
	variants := []struct {
		name string
		disk api.Disk
		iot  int
	}{
		{"default", api.Disk{Name: "root", Size: dtDisk}, 0},
		{"tuned", api.Disk{Name: "root", Size: dtDisk, Cache: "none", IO: "native", IOThread: 1}, 1},
	}
	rates := map[string]map[string][]float64{} // variant -> workload -> rates
	for run := 0; run <= env.Runs; run++ {     // run 0 warms up
		for _, v := range variants {
			spec := api.VMSpec{
				Name: fmt.Sprintf("%s%s-%d", prefix, v.name, run), CPUs: 1, Memory: dtMemory, IOThreads: v.iot,
				Boot:  &api.Boot{Kernel: guest.Kernel, Initrd: guest.Initrd, Cmdline: "console=ttyS0 quiet iobench=1"},
				Disks: []api.Disk{v.disk},
			}
			got, err := dtRun(ctx, d, spec)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", v.name, err)
			}
			env.Logf("run %d %s: %s", run, v.name, dtFormat(got))
			if run == 0 {
				continue
			}
			if rates[v.name] == nil {
				rates[v.name] = map[string][]float64{}
			}
			for w, r := range got {
				rates[v.name][w] = append(rates[v.name][w], r)
			}
		}
	}
	var out []Result
	for _, w := range dtWorkloads {
		out = append(out, Result{Metric: w.metric, Godwit: Median(rates["tuned"][w.name]), Baseline: Median(rates["default"][w.name]),
			BaselineName: "godwit's default disk (cache=none, io=threads, no I/O thread)"})
	}
	return out, nil
}

// dtRun boots the guest with the workload and returns each workload's rate.
func dtRun(ctx context.Context, d *Daemon, spec api.VMSpec) (map[string]float64, error) {
	del := d.CreateCleanup(spec.Name)
	defer func() { _ = del.Run(context.Background()) }()
	rctx, cancel := context.WithTimeout(ctx, dtTimeout)
	defer cancel()
	op, err := d.Client.CreateVM(rctx, spec, client.CreateOptions{Start: true})
	if err != nil {
		return nil, err
	}
	if op, err = d.Client.WaitOperation(rctx, op.ID, nil); err != nil {
		return nil, err
	}
	if op.State != api.OpSucceeded {
		return nil, fmt.Errorf("create: %s", op.Error)
	}
	stream, err := d.Client.Console(rctx, spec.Name, client.ConsoleOptions{Follow: true})
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	return dtParse(stream)
}

// dtParse reads IOBENCH lines until IOBENCH-DONE.
func dtParse(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "IOBENCH-DONE" {
			return out, nil
		}
		m := ioBenchRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, _ := strconv.ParseFloat(m[2], 64)
		s, _ := strconv.ParseFloat(m[3], 64)
		e, _ := strconv.ParseFloat(m[4], 64)
		if e <= s {
			return nil, fmt.Errorf("%s: took no time (%s)", m[1], line)
		}
		out[m[1]] = n / (e - s)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("the console ended before IOBENCH-DONE")
}

func dtFormat(m map[string]float64) string {
	var p []string
	for _, w := range dtWorkloads {
		p = append(p, fmt.Sprintf("%s %.1f", w.name, m[w.name]))
	}
	return strings.Join(p, ", ")
}
