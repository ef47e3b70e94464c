package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

// A user migrates a VM from its web page between two test-bed hosts: picks
// the other host, presses Migrate, watches the bar go to 100%, then reads
// the report (total, pause, bytes) the operation gave, and the page says
// where the VM went. Then two VMs at once from the overview's bulk bar;
// the overview lists both hosts with their load and memory.
// The browser reaches the source host's unix socket through a loopback
// tunnel, as a user's SSH tunnel would. Each guest's counter goes on and
// its disk holds its data there (checkMoved).
func TestWebMigrate(t *testing.T) {
	concurrent(t)
	b := migrationBed(t, 2, true)
	a, bb := b.Hosts[0], b.Hosts[1]
	name := "e2e-uimig-" + uniq()
	sum := onHost(t, a, name)
	before := lastTick(hostConsole(t, a, name))
	out, err := a.CLI("token", "create", "--name", "e2e-uimig-"+uniq(), "--scope", "admin", "-q")
	if err != nil {
		t.Fatalf("token: %v\n%s", err, out)
	}
	token := strings.TrimSpace(out)
	base := tunnel(t, a.Socket)

	ctx := browser(t)
	inBrowser(t, ctx, "log in and open the VM", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SetValue(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#vm-"+name)), chromedp.Click(chromedp.CSS("#vm-"+name+" a")),
		until(fmt.Sprintf(`[...document.querySelectorAll("#migrate-to option")].some(o => o.value === %q && !o.disabled)`, bb.Name)),
		chromedp.SetValue(chromedp.CSS("#migrate-to"), bb.Name), screenshot(t, "vm-migrate"),
		chromedp.Click(chromedp.CSS("#migrate-submit")))

	// The bar, sampled as it moves: the status line's while the move runs,
	// then the activity list's entry for the operation.
	type sample struct {
		State string  `json:"state"`
		Value float64 `json:"value"`
		Text  string  `json:"text"`
		Moved string  `json:"moved"`
	}
	const sampleJS = `(() => { const s = document.querySelector("#migrate-status"), bar = s && s.querySelector("progress");
		const op = document.querySelector("#ops li[data-state]"), moved = document.querySelector("#moved");
		return { state: s ? s.dataset.state || "" : (op ? op.dataset.state : ""), value: bar && bar.hasAttribute("value") ? bar.value : -1,
			text: s ? s.textContent : "", moved: moved ? moved.textContent : "" }; })()`
	var seen []sample
	var shot bool
	deadline := time.Now().Add(3 * time.Minute)
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, err := chromedp.Run(sctx, chromedp.Evaluate[sample](sampleJS))
		cancel()
		if err == nil {
			if len(seen) == 0 || seen[len(seen)-1] != s {
				seen = append(seen, s)
			}
			if s.State == "running" && !shot {
				inBrowser(t, ctx, "the bar", screenshot(t, "vm-migrate-progress"))
				shot = true
			}
			if s.Moved != "" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page never said the VM moved; it showed %+v (last error %v)", seen, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the migrate status as it went: %+v", seen)
	// The bar only goes forward.
	for i, high := 0, -1.0; i < len(seen); i++ {
		if v := seen[i].Value; v >= 0 {
			if v < high {
				t.Errorf("the bar went back from %v%% to %v%%: %+v", high, v, seen)
			}
			high = v
		}
	}
	if !shot {
		t.Errorf("the status line never showed the running move with its bar: %+v", seen)
	}
	if last := seen[len(seen)-1]; !strings.Contains(last.Moved, bb.Name) {
		t.Errorf("the moved page says %q, want it to name %s", last.Moved, bb.Name)
	}

	// The report on the page is the operation's.
	ops, err := a.C.ListOperations(ctxT(t, 30*time.Second), client.OperationFilter{Target: "vm/" + name})
	if err != nil {
		t.Fatal(err)
	}
	var rep api.MigrationReport
	for _, op := range ops {
		if op.Kind == "vm.migrate" && op.State == api.OpSucceeded {
			if err := json.Unmarshal(op.Result, &rep); err != nil {
				t.Fatal(err)
			}
		}
	}
	if rep.To != bb.Name {
		t.Fatalf("no succeeded vm.migrate operation to %s for %s: %+v", bb.Name, name, ops)
	}
	inBrowser(t, ctx, "the report", screenshot(t, "vm-migrated"))
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	paused, err := chromedp.Run(rctx, chromedp.Text(chromedp.CSS(`#migrate-report tr:nth-child(4) td`)))
	if err != nil {
		t.Fatalf("the report's pause: %v", err)
	}
	attr, err := chromedp.Run(rctx, chromedp.AttributeValue(chromedp.CSS(`#ops li[data-state="succeeded"] progress`), "value"))
	if err != nil {
		t.Fatalf("the activity bar: %v", err)
	}
	bar := attr.Value
	if want := fmt.Sprintf("%d ms", rep.DowntimeMs); rep.DowntimeMs < 10000 && paused != want {
		t.Errorf("the page says the guest was paused %q, the operation %s", paused, want)
	}
	if bar != "100" {
		t.Errorf("the activity bar ended at %q, want 100", bar)
	}
	checkMoved(t, a, bb, name, before, sum)

	// Two more, ticked on the overview, moved with one click.
	bulk := []string{"e2e-uimig-" + uniq(), "e2e-uimig-" + uniq()}
	sums, befores := map[string]string{}, map[string]int{}
	for _, vm := range bulk {
		sums[vm] = onHost(t, a, vm)
		befores[vm] = lastTick(hostConsole(t, a, vm))
	}
	done := func(vm string) chromedp.Action[chromedp.Void] {
		return until(fmt.Sprintf(`(document.querySelector('#bulk-results li[data-vm=%q]') || {dataset: {}}).dataset.state === "succeeded"`, vm))
	}
	inBrowser(t, ctx, "bulk migrate", chromedp.Click(chromedp.CSS(`#nav a[href="#/"]`)), chromedp.WaitVisible(chromedp.CSS("#vm-"+bulk[1])),
		until(fmt.Sprintf(`!!document.querySelector('#bulk-to option[value=%q]')`, bb.Name)),
		// The overview's hosts: both answer, with their load and memory.
		until(fmt.Sprintf(`[%q, %q].every(n => { const r = document.querySelector("#host-" + n);
			return r && r.dataset.answering === "true" && r.querySelectorAll("meter").length === 2 && r.textContent.includes("free of"); })`, a.Name, bb.Name)),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input.pick[data-vm=%q]`, bulk[0]))), chromedp.Click(chromedp.CSS(fmt.Sprintf(`input.pick[data-vm=%q]`, bulk[1]))),
		chromedp.SetValue(chromedp.CSS("#bulk-to"), bb.Name),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#bulk-to").dispatchEvent(new Event("change", {bubbles: true}))`),
		until(`!document.querySelector('#bulk button[data-bulk="migrate"]').disabled`),
		chromedp.Click(chromedp.CSS(`#bulk button[data-bulk="migrate"]`)), done(bulk[0]), done(bulk[1]),
		// The overview follows: the moved VMs leave this host's list.
		until(fmt.Sprintf(`!document.querySelector("#vm-%s") && !document.querySelector("#vm-%s")`, bulk[0], bulk[1])), screenshot(t, "bulk-migrate"))
	for _, vm := range bulk {
		checkMoved(t, a, bb, vm, befores[vm], sums[vm])
	}
}

// tunnel forwards a loopback TCP port to a daemon's unix socket, like
// `ssh -L PORT:/run/godwit/godwit.sock`, and returns its http:// base.
func tunnel(t *testing.T, socket string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				u, err := net.Dial("unix", socket)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); u.Close() }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	return "http://" + l.Addr().String()
}
