package bench

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func init() {
	Register(Benchmark{
		Name: "ui-list",
		Summary: "web page with 100 VMs in headless Chromium: time from navigation to the rendered VM list, and the bytes it " +
			"transferred, vs the JSON API call alone (fetch GET /v1/vms and parse it, from the same page)",
		Run: runUIList,
	})
}

// uiListVMs is how many VMs the list holds (define-only: the page lists
// them the same whether they run or not).
const uiListVMs = 100

// rendered is set on each new document before the page's own script: it
// notes the time (ms since navigation start) when the VM table first holds
// every VM's row.
const rendered = `new MutationObserver((_, obs) => {
	const n = document.querySelectorAll("#vms tbody tr[data-state]").length;
	if (n >= %d) { window.__rendered = performance.now(); obs.disconnect(); }
}).observe(document, {childList: true, subtree: true});`

// pageLoad: time to the rendered list and bytes over the wire (the
// document and every resource the page fetched, headers included).
const pageLoad = `new Promise((ok) => { const t = setInterval(() => { if (window.__rendered) { clearInterval(t);
	const all = [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")];
	ok({ms: window.__rendered, bytes: all.reduce((s, e) => s + e.transferSize, 0)}); } }, 20); })`

// apiCall: GET /v1/vms alone, parsed, and its bytes over the wire.
const apiCall = `(async () => { performance.clearResourceTimings(); const t0 = performance.now();
	const vms = (await (await fetch("/v1/vms?x=" + Math.random(), {cache: "no-store"})).json()).vms;
	const ms = performance.now() - t0; if (vms.length < %d) throw new Error("only " + vms.length + " VMs");
	await new Promise((r) => setTimeout(r, 50));
	const e = performance.getEntriesByType("resource").find((e) => e.name.includes("/v1/vms"));
	return {ms, bytes: e ? e.transferSize : 0}; })()`

type loadStat struct {
	Ms    float64 `json:"ms"`
	Bytes float64 `json:"bytes"`
}

func runUIList(ctx context.Context, env *Env) ([]Result, error) {
	if err := env.RequireRoot(); err != nil {
		return nil, err
	}
	if err := env.RequireLibvirt(ctx); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("chromium"); err != nil {
		return nil, fmt.Errorf("chromium is not installed (scripts/host-setup.sh --tests installs it)")
	}
	g, err := env.Guest()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	d, err := env.StartDaemon(ctx, "--accel", "tcg", "--listen", addr)
	if err != nil {
		return nil, err
	}
	id := RandomID(3)
	start := time.Now()
	for i := range uiListVMs {
		name := fmt.Sprintf("bui-%s-%03d", id, i)
		d.CreateCleanup(name)
		spec := api.VMSpec{Name: name, CPUs: 1, Memory: 128 * api.MiB,
			Boot: &api.Boot{Kernel: g.Kernel, Initrd: g.Initrd, Cmdline: "console=ttyS0 quiet"}}
		op, err := d.Client.CreateVM(ctx, spec, client.CreateOptions{})
		if err == nil {
			_, err = d.Client.WaitOperation(ctx, op.ID, nil)
		}
		if err != nil {
			return nil, fmt.Errorf("define vm %s: %w", name, err)
		}
		if (i+1)%25 == 0 {
			env.Logf("defined %d VMs (%.1f s)", i+1, time.Since(start).Seconds())
		}
	}
	env.Logf("defined %d VMs in %.1f s", uiListVMs, time.Since(start).Seconds())
	tok, err := d.Client.CreateToken(ctx, api.TokenRequest{Name: "bench-ui-" + id, Scope: "admin"})
	if err != nil {
		return nil, err
	}

	bctx, stop, err := benchBrowser(ctx, env)
	if err != nil {
		return nil, err
	}
	defer stop()
	url := "https://" + addr + "/ui/"
	login := fmt.Sprintf(`fetch("/ui/api/login", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({token: %q})}).then((r) => r.status)`, tok.Secret)
	if err := chromedp.Do(bctx, chromedp.Navigate(url)); err != nil {
		return nil, err
	}
	if status, err := chromedp.Run(bctx, chromedp.Evaluate[int](login, chromedp.EvalAwaitPromise)); err != nil || status != 200 {
		return nil, fmt.Errorf("log in: %d %v", status, err)
	}
	if _, err := chromedp.Call(bctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: fmt.Sprintf(rendered, uiListVMs)}); err != nil {
		return nil, err
	}
	// Every load is cold: nothing from the browser's cache.
	if _, err := chromedp.Call(bctx, network.Enable, network.EnableParams{}); err != nil {
		return nil, err
	}
	if _, err := chromedp.Call(bctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true}); err != nil {
		return nil, err
	}
	// Each load gets a minute: a page that never renders the list fails
	// the benchmark rather than hanging it.
	bounded := func(f func(context.Context) (loadStat, error)) func() (loadStat, error) {
		return func() (loadStat, error) {
			c, cancel := context.WithTimeout(bctx, time.Minute)
			defer cancel()
			return f(c)
		}
	}
	loads := 0
	variants := []struct {
		name string
		run  func() (loadStat, error)
	}{
		{"page", bounded(func(c context.Context) (loadStat, error) {
			// A new query each time: a new document, not a jump in this one.
			loads++
			if err := chromedp.Do(c, chromedp.Navigate(fmt.Sprintf("%s?load=%d", url, loads))); err != nil {
				return loadStat{}, err
			}
			return chromedp.Run(c, chromedp.Evaluate[loadStat](pageLoad, chromedp.EvalAwaitPromise))
		})},
		{"api", bounded(func(c context.Context) (loadStat, error) {
			return chromedp.Run(c, chromedp.Evaluate[loadStat](fmt.Sprintf(apiCall, uiListVMs), chromedp.EvalAwaitPromise))
		})},
	}
	env.Logf("warm-up round (not counted)")
	for _, v := range variants {
		if _, err := v.run(); err != nil {
			return nil, fmt.Errorf("warm-up %s: %w", v.name, err)
		}
	}
	ms, bytes := map[string][]float64{}, map[string][]float64{}
	for i := 1; i <= env.Runs; i++ {
		for _, v := range variants {
			s, err := v.run()
			if err != nil {
				return nil, fmt.Errorf("run %d %s: %w", i, v.name, err)
			}
			ms[v.name] = append(ms[v.name], s.Ms)
			bytes[v.name] = append(bytes[v.name], s.Bytes)
			env.Logf("run %d/%d %-4s %7.1f ms %8.0f bytes", i, env.Runs, v.name, s.Ms, s.Bytes)
		}
	}
	round := func(v float64) float64 { return float64(int(v*10)) / 10 }
	return []Result{
		{Metric: "first_render_ms", Godwit: round(Median(ms["page"])), Baseline: round(Median(ms["api"])), BaselineName: "GET /v1/vms"},
		{Metric: "transferred_bytes", Godwit: Median(bytes["page"]), Baseline: Median(bytes["api"]), BaselineName: "GET /v1/vms"},
	}, nil
}

// benchBrowser starts a headless Chromium with a throwaway profile (root
// needs --no-sandbox; the daemon's certificate is from its own CA).
func benchBrowser(ctx context.Context, env *Env) (context.Context, func(), error) {
	dir, err := env.SubDir("chromium")
	if err != nil {
		return nil, nil, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath("chromium"), chromedp.NoSandbox,
		chromedp.Flag("ignore-certificate-errors", true), chromedp.UserDataDir(dir), chromedp.WindowSize(1200, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancel := chromedp.NewContext(actx)
	stop := func() { cancel(); cancelAlloc() }
	if err := chromedp.Do(bctx); err != nil {
		stop()
		return nil, nil, fmt.Errorf("start chromium: %w", err)
	}
	return bctx, stop, nil
}
