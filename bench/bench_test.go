package bench

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	cases := []struct {
		in   []float64
		want float64
	}{
		{[]float64{5}, 5},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{6100, 5900, 7000, 6000, 6050}, 6050},
	}
	for _, c := range cases {
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
	in := []float64{3, 1, 2}
	Median(in)
	if in[0] != 3 {
		t.Error("Median sorted its input")
	}
}

func TestResultLine(t *testing.T) {
	r := Result{Metric: "latency_ms", Godwit: 6400, Baseline: 6000}
	want := "bench create-boot: latency_ms godwit=6400 baseline=6000 ratio=1.07"
	if got := r.Line("create-boot"); got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
	if got := FormatValue(12.3456); got != "12.346" {
		t.Errorf("FormatValue = %q", got)
	}
}

// Run cleans up on failure, newest first, and prints result lines last.
func TestRunCleansUpAndPrintsResultsLast(t *testing.T) {
	var out strings.Builder
	var order []string
	b := Benchmark{Name: "fake", Summary: "a fake", Run: func(ctx context.Context, env *Env) ([]Result, error) {
		env.Defer("first", func(context.Context) error { order = append(order, "first"); return nil })
		early := env.Defer("early", func(context.Context) error { order = append(order, "early"); return nil })
		env.Defer("second", func(context.Context) error { order = append(order, "second"); return nil })
		if err := early.Run(ctx); err != nil {
			return nil, err
		}
		return []Result{{Metric: "m", Godwit: 2, Baseline: 1}}, nil
	}}
	if _, err := Run(context.Background(), b, Options{Runs: 1, Out: &out}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ","); got != "early,second,first" {
		t.Errorf("cleanup order %s", got)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; last != "bench fake: m godwit=2 baseline=1 ratio=2.00" {
		t.Errorf("last line %q\n%s", last, out.String())
	}

	out.Reset()
	ran := false
	b.Run = func(ctx context.Context, env *Env) ([]Result, error) {
		env.Defer("undo", func(context.Context) error { ran = true; return nil })
		return []Result{{Metric: "m"}}, errors.New("boom")
	}
	if _, err := Run(context.Background(), b, Options{Runs: 1, Out: &out}); err == nil {
		t.Error("no error")
	}
	if !ran || strings.Contains(out.String(), "bench fake:") {
		t.Errorf("cleanup ran %v; output:\n%s", ran, out.String())
	}
}

func TestWaitFileLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "serial.log")
	go func() {
		time.Sleep(30 * time.Millisecond)
		f, _ := os.Create(path)
		f.WriteString("early boot\r\nGODWIT-GU")
		time.Sleep(30 * time.Millisecond)
		f.WriteString("EST-UP kernel=6.1\r\n")
		f.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := WaitFileLine(ctx, path, "GODWIT-GUEST-UP", 5*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	failed := make(chan error, 1)
	failed <- errors.New("qemu exited")
	if _, err := WaitFileLine(ctx, path+".none", "X", time.Millisecond, failed); err == nil || err.Error() != "qemu exited" {
		t.Errorf("err = %v", err)
	}
}

func TestRegistry(t *testing.T) {
	Register(Benchmark{Name: "zz-fake", Run: func(context.Context, *Env) ([]Result, error) { return nil, nil }})
	if _, ok := Lookup("zz-fake"); !ok {
		t.Fatal("zz-fake is not registered")
	}
	all := All()
	for i := 1; i < len(all); i++ {
		if all[i-1].Name >= all[i].Name {
			t.Errorf("All is not sorted: %s, %s", all[i-1].Name, all[i].Name)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("a duplicate name did not panic")
		}
	}()
	Register(Benchmark{Name: "zz-fake", Run: func(context.Context, *Env) ([]Result, error) { return nil, nil }})
}

func TestDiskTuningParse(t *testing.T) {
	got, err := dtParse(strings.NewReader("tick 1\nIOBENCH seq-write 64 10.00 12.00\nIOBENCH rand-read-4k 256 12.0 14.0\nIOBENCH-DONE\n"))
	if err != nil || got["seq-write"] != 32 || got["rand-read-4k"] != 128 {
		t.Fatalf("dtParse = %v, %v", got, err)
	}
	if _, err := dtParse(strings.NewReader("IOBENCH seq-read 64 3 3\n")); err == nil {
		t.Fatal("a workload that took no time: no error")
	}
	if _, err := dtParse(strings.NewReader("tick 1\n")); err == nil {
		t.Fatal("no IOBENCH-DONE: no error")
	}
}
