package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/godwit-project/godwit/internal/hypervisor/libvirt"
)

func init() {
	Register(Benchmark{
		Name:    "scrape",
		Summary: "GET /metrics with 99 more defined VMs on libvirtd vs without them (one bulk stats call per scrape)",
		Run:     runScrape,
	})
}

// scrapesPerRound are the scrapes timed per state and round.
const scrapesPerRound = 20

// runScrape times a /metrics scrape of a daemon while libvirtd holds the
// domains it has anyway (at least the one VM defined here), and while it
// holds 99 more defined (stopped) VMs. The two states alternate round by
// round: define the 99, scrape, undefine them, scrape, ... so both see the
// same noise. The metrics show every domain of the libvirtd (other users'
// as unmanaged), so "1 VM" is the machine's own domains plus one.
func runScrape(ctx context.Context, env *Env) ([]Result, error) {
	if err := env.RequireRoot(); err != nil {
		return nil, err
	}
	if err := env.RequireLibvirt(ctx); err != nil {
		return nil, err
	}
	d, err := env.StartDaemon(ctx, "--accel", "tcg")
	if err != nil {
		return nil, err
	}
	lv, err := libvirt.New(LibvirtURI, slog.New(slog.NewTextHandler(io.Discard, nil)), libvirt.Options{})
	if err != nil {
		return nil, err
	}
	defer lv.Close()
	prefix := "bench-scrape-" + RandomID(3) + "-"
	define := func(i int) error {
		name := fmt.Sprintf("%s%03d", prefix, i)
		_, err := lv.Define(ctx, fmt.Sprintf(`<domain type="qemu"><name>%s</name><memory unit="MiB">64</memory><vcpu>1</vcpu>`+
			`<os><type arch="x86_64">hvm</type></os></domain>`, name))
		return err
	}
	undefine := func(i int) error { return lv.Undefine(ctx, fmt.Sprintf("%s%03d", prefix, i)) }
	env.Defer("undefine the "+prefix+"* domains", func(ctx context.Context) error {
		doms, err := lv.List(ctx)
		if err != nil {
			return err
		}
		for _, dm := range doms {
			if strings.HasPrefix(dm.Name, prefix) {
				if err := lv.Undefine(ctx, dm.Name); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err := define(0); err != nil {
		return nil, err
	}
	scrape := func() (float64, int, error) {
		start := time.Now()
		text, err := d.Client.Metrics(ctx)
		ms := float64(time.Since(start).Microseconds()) / 1000
		return ms, strings.Count(text, "\ngodwit_vm_state{"), err
	}
	// Warm up: the first scrape reads the host's static facts.
	if _, _, err := scrape(); err != nil {
		return nil, err
	}
	var few, many []float64
	var nFew, nMany int
	for round := range env.Runs {
		for i := 1; i < 100; i++ {
			if err := define(i); err != nil {
				return nil, err
			}
		}
		for range scrapesPerRound {
			ms, n, err := scrape()
			if err != nil {
				return nil, err
			}
			many, nMany = append(many, ms), n
		}
		for i := 1; i < 100; i++ {
			if err := undefine(i); err != nil {
				return nil, err
			}
		}
		for range scrapesPerRound {
			ms, n, err := scrape()
			if err != nil {
				return nil, err
			}
			few, nFew = append(few, ms), n
		}
		env.Logf("round %d/%d: median %.2f ms with %d VMs, %.2f ms with %d VMs", round+1, env.Runs,
			Median(many[len(many)-scrapesPerRound:]), nMany, Median(few[len(few)-scrapesPerRound:]), nFew)
	}
	return []Result{{Metric: "scrape_ms", Godwit: Median(many), Baseline: Median(few),
		BaselineName: fmt.Sprintf("the same scrape with %d VMs instead of %d", nFew, nMany)}}, nil
}
