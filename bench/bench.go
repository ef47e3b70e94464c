// Package bench is godwit's benchmark suite. A benchmark measures godwit
// and a baseline (virsh, plain QEMU, qemu-img, ...) in the same run,
// interleaved, and reports one line per metric:
//
//	bench <name>: <metric> godwit=<v> baseline=<v> ratio=<godwit/baseline>
//
// The machines godwit is benchmarked on are shared and noisy, so a number is
// only ever compared with a baseline measured in the same run. Benchmarks
// are not pass/fail tests: they report, and fail only when they cannot
// measure.
//
// A benchmark registers itself from an init function:
//
//	func init() {
//		bench.Register(bench.Benchmark{Name: "disk-clone", Summary: "...", Run: runDiskClone})
//	}
//
// and gets an *Env with what most benchmarks need: progress output, a
// cleanup stack that also runs on failure and Ctrl-C, a temp dir, the test
// guest, a private godwit daemon, virsh and qemu-img helpers.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Benchmark is one named benchmark.
type Benchmark struct {
	// Name is what -run selects and what result lines start with,
	// e.g. "create-boot".
	Name string
	// Summary says in one line what is measured against what.
	Summary string
	// Run measures and returns one Result per metric. Everything it sets
	// up must be registered with env.Defer so it is undone even when Run
	// fails or ctx is cancelled (Ctrl-C).
	Run func(ctx context.Context, env *Env) ([]Result, error)
}

// Result is one metric of a benchmark: godwit's value and the baseline's,
// both measured in the same run.
type Result struct {
	// Metric names what was measured, with its unit, e.g. "latency_ms".
	Metric string
	// Godwit and Baseline are the values (e.g. medians over the runs).
	Godwit   float64
	Baseline float64
	// BaselineName says what the baseline was (e.g. "virsh"); it is
	// printed on a progress line, not in the result line.
	BaselineName string
}

// Ratio is Godwit / Baseline (NaN when the baseline is 0).
func (r Result) Ratio() float64 {
	if r.Baseline == 0 {
		return math.NaN()
	}
	return r.Godwit / r.Baseline
}

// Line is the result line of benchmark name:
// "bench <name>: <metric> godwit=<v> baseline=<v> ratio=<r>".
func (r Result) Line(name string) string {
	return fmt.Sprintf("bench %s: %s godwit=%s baseline=%s ratio=%.2f",
		name, r.Metric, FormatValue(r.Godwit), FormatValue(r.Baseline), r.Ratio())
}

// FormatValue prints a value with at most three decimals and no trailing
// zeros: 6234, 12.5, 0.125.
func FormatValue(v float64) string {
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

var (
	registryMu sync.Mutex
	registry   = map[string]Benchmark{}
)

// Register adds a benchmark to the suite. It panics on an empty or
// duplicate name (a programming error, found at startup).
func Register(b Benchmark) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if b.Name == "" || b.Run == nil || strings.ContainsAny(b.Name, " \t,:") {
		panic(fmt.Sprintf("bench: invalid benchmark %q", b.Name))
	}
	if _, dup := registry[b.Name]; dup {
		panic("bench: benchmark registered twice: " + b.Name)
	}
	registry[b.Name] = b
}

// All returns every registered benchmark, sorted by name.
func All() []Benchmark {
	registryMu.Lock()
	defer registryMu.Unlock()
	out := make([]Benchmark, 0, len(registry))
	for _, b := range registry {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup finds a benchmark by name.
func Lookup(name string) (Benchmark, bool) {
	registryMu.Lock()
	defer registryMu.Unlock()
	b, ok := registry[name]
	return b, ok
}

// Options apply to every benchmark of a suite run.
type Options struct {
	// Repo is the root of the godwit source tree (the daemon is built
	// from it, the test guest is found in it).
	Repo string
	// Runs is how many measured runs each variant gets (after warm-up).
	Runs int
	// Out receives progress and result lines.
	Out io.Writer
}

// CleanupTimeout bounds the cleanup of one benchmark.
var CleanupTimeout = 3 * time.Minute

// Run runs one benchmark: it measures, undoes everything the benchmark set
// up (also on failure or cancellation), then prints the result lines, so
// they are the benchmark's last lines.
func Run(ctx context.Context, b Benchmark, opts Options) (results []Result, err error) {
	if opts.Runs < 1 {
		return nil, fmt.Errorf("runs must be at least 1, not %d", opts.Runs)
	}
	env := newEnv(b.Name, opts)
	env.Logf("%s", b.Summary)
	start := time.Now()
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		results, err = b.Run(ctx, env)
	}()
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	cctx, cancel := context.WithTimeout(context.Background(), CleanupTimeout)
	defer cancel()
	if cerr := env.cleanup.runAll(cctx, env.Logf); cerr != nil {
		err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
	}
	if err != nil {
		if ctx.Err() != nil {
			env.Logf("interrupted after %s", time.Since(start).Round(time.Second))
		} else {
			env.Logf("FAILED after %s: %v", time.Since(start).Round(time.Second), err)
		}
		return nil, err
	}
	env.Logf("done in %s", time.Since(start).Round(time.Second))
	for _, r := range results {
		fmt.Fprintln(env.out, r.Line(b.Name))
	}
	return results, nil
}

// Median returns the median of vs (the mean of the middle two for an even
// count; NaN for none).
func Median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Millis converts a duration to float milliseconds.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
