package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/godwit-project/godwit/internal/testenv"
)

// screenshotDir is where the web page tests leave what a user would see.
func screenshotDir(t *testing.T) string {
	dir := filepath.Join(testenv.RepoRoot(), ".cache", "artifacts", "ui")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts a headless Chromium (Debian's) for one test. Root needs
// --no-sandbox; the daemon's certificate comes from its own CA, which
// this throwaway profile does not know.
func browser(t *testing.T) context.Context {
	t.Helper()
	testenv.RequireCommand(t, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath("chromium"),
		chromedp.NoSandbox,
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// Confirmations (delete, force stop) are accepted, as a user would.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return ctx
}

// inBrowser runs browser steps with a deadline, failing the test with
// what it was doing and what the page showed.
func inBrowser(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		body, _ := chromedp.Run(tctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v\npage text:\n%s", what, err, body)
	}
}

// until waits for a JavaScript expression to be true on the page.
func until(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for {
			ok, err := chromedp.Evaluate[bool](expr)(ctx, tg)
			if err == nil && ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s: %w (last error %v)", expr, ctx.Err(), err)
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
}

// consoleHas: the VM page's terminal holds s (its whole buffer, not only
// what is on screen).
func consoleHas(s string) string {
	return fmt.Sprintf(`(() => { const el = document.querySelector("#console"); if (!el || !el.terminal) return false;
		const b = el.terminal.buffer.active; let all = "";
		for (let i = 0; i < b.length; i++) all += b.getLine(i).translateToString(true) + "\n";
		return all.includes(%q); })()`, s)
}

// typeInto types a line into the VM page's terminal: the text as the
// browser's text input (key events for every character arrive twice in
// xterm.js from DevTools' synthetic keys, not from a keyboard), then Enter.
func typeInto(line string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := chromedp.Focus(chromedp.CSS("#console .xterm-helper-textarea"), chromedp.NodeReady)(ctx, tg); err != nil {
			return err
		}
		if _, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: line}); err != nil {
			return err
		}
		_, err := chromedp.KeyEvent(kb.Enter)(ctx, tg)
		return err
	})
}

// screenshot writes the page as a test artifact. A screenshot that cannot
// be taken (Chromium's capture has been seen to fail on a loaded machine)
// is logged, not a failure: it is what people look at, not a check.
func screenshot(t *testing.T, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		png, err := chromedp.FullScreenshot(100)(sctx, tg) // 100: PNG
		if err != nil {
			t.Logf("screenshot %s not taken: %v", name, err)
			return nil
		}
		file := filepath.Join(screenshotDir(t), name+".png")
		t.Logf("screenshot %s", file)
		return os.WriteFile(file, png, 0o644)
	})
}

// A user logs in to the web page with a token, sees the VM running,
// pauses, resumes, force-stops and starts it from its buttons (the state
// follows through the event stream, with no reload), reads its console
// on its page; a read-only login sees no buttons, and a change the page
// did not send (no CSRF token) or that the scope forbids is refused.
func TestWebPage(t *testing.T) {
	concurrent(t)
	addr := freeAddr(t)
	d := StartDaemon(t, "--listen", addr, "--history-step", "2s")
	name := "e2e-ui-" + uniq()
	d.createVM(guestSpec(t, name), true)
	d.waitConsole(name, `GODWIT-GUEST-UP`, 0, guestWait)
	admin := strings.TrimSpace(d.MustCLI("token", "create", "--name", "e2e-ui-admin", "--scope", "admin", "-q"))
	viewer := strings.TrimSpace(d.MustCLI("token", "create", "--name", "e2e-ui-viewer", "--scope", "read", "-q"))
	url := "https://" + addr + "/ui/"
	ctx := browser(t)
	row := "#vm-" + name
	state := func(s string) chromedp.Action[chromedp.Void] {
		return chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`%s[data-state="%s"]`, row, s)))
	}
	click := func(action string) chromedp.Action[chromedp.Void] {
		return chromedp.Click(chromedp.CSS(fmt.Sprintf(`%s button[data-action="%s"]`, row, action)))
	}
	token := chromedp.CSS("#token")
	submit := chromedp.Click(chromedp.CSS("#login-submit"))

	inBrowser(t, ctx, "the login page", chromedp.Navigate(url), chromedp.WaitVisible(token), screenshot(t, "login"))
	inBrowser(t, ctx, "a wrong token", chromedp.SendKeys(token, "gwt_wrong"), submit,
		until(`document.querySelector("#login-error").textContent.includes("invalid or revoked")`))
	inBrowser(t, ctx, "log in as admin", chromedp.SetValue(token, admin), submit, state("running"), screenshot(t, "overview"))

	inBrowser(t, ctx, "pause", click("pause"), state("paused"))
	if v, err := d.C.GetVM(ctxT(t, 30*time.Second), name); err != nil || v.State != "paused" {
		t.Fatalf("after the page paused it: %v %v", v.State, err)
	}
	inBrowser(t, ctx, "resume", click("resume"), state("running"))
	// A force stop is an operation: the activity panel follows it to its end.
	inBrowser(t, ctx, "force stop", click("force-stop"), state("stopped"),
		until(`[...document.querySelectorAll("#ops li")].some(li => li.dataset.state === "succeeded" && li.textContent.includes("vm.stop"))`),
		screenshot(t, "stopped"))
	offset := consoleSize(t, d, name)
	inBrowser(t, ctx, "start", click("start"), state("running"))
	// It really booted again: its console says so after the start.
	d.waitConsole(name, `GODWIT-GUEST-UP`, offset, guestWait)

	// The console in xterm.js over the websocket: the boot line, then a
	// line typed into the terminal runs in the guest (its RUN channel)
	// and its output shows in this viewer and in a second one, opened
	// after the first (which must not stall it).
	inBrowser(t, ctx, "the VM's page and its console", chromedp.Click(chromedp.CSS(row+" a")),
		until(consoleHas("GODWIT-GUEST-UP")), until(`document.querySelector("#console-status").textContent === "connected"`),
		screenshot(t, "vm"))
	vmURL := url + "#/vm/" + name
	// The usage graphs fill from the daemon's history (a point every 2 s
	// here): CPU above zero, as a booted guest under TCG uses.
	inBrowser(t, ctx, "the usage graphs", until(`(() => { const p = (document.querySelector("#graph-cpu") || {}).plot;
		return !!p && p.data[0].length >= 3 && Math.max(...p.data[1]) > 0 && !!document.querySelector("#graph-net canvas"); })()`),
		screenshot(t, "vm-graphs"))
	// The VM page's own operations (the force stop and start from the
	// overview among them) and its live events: a pause and a resume
	// from its toolbar show as they happen.
	inBrowser(t, ctx, "the VM's operations and events",
		until(`[...document.querySelectorAll("#vm-ops-table tbody tr")].some(r => r.textContent.includes("vm.stop") && r.textContent.includes("succeeded"))`),
		chromedp.Click(chromedp.CSS(`main .toolbar button[data-action="pause"]`)), until(`document.querySelector("#vm-state").textContent === "paused"`),
		chromedp.Click(chromedp.CSS(`main .toolbar button[data-action="resume"]`)), until(`document.querySelector("#vm-state").textContent === "running"`),
		until(`(() => { const t = [...document.querySelectorAll("#vm-events li")].map(l => l.textContent);
			const s = t.findIndex(x => x.includes("suspended")), r = t.findIndex(x => x.includes("resumed"));
			return s >= 0 && r >= 0 && r < s; })()`), // newest first: resumed above suspended
		screenshot(t, "vm-events"))
	// Another browser (a tab in the background would be throttled), another login.
	second := browser(t)
	inBrowser(t, second, "a second viewer", chromedp.Navigate(url), chromedp.WaitVisible(token), chromedp.SetValue(token, admin), submit,
		state("running"), chromedp.Navigate(vmURL), until(consoleHas("GODWIT-GUEST-UP")))
	id := uniq()
	inBrowser(t, ctx, "type into the console", typeInto("RUN "+id+" echo typed-$((6*7))"),
		until(consoleHas("OUT "+id+" typed-42")), screenshot(t, "console-typed"))
	inBrowser(t, second, "the second viewer sees it too", until(consoleHas("OUT "+id+" typed-42")), screenshot(t, "console-second-viewer"))
	// And the first still follows the console with the second open.
	id2 := uniq()
	inBrowser(t, second, "type from the second viewer", typeInto("RUN "+id2+" echo from-second"), until(consoleHas("OUT "+id2+" from-second")))
	inBrowser(t, ctx, "the first viewer follows on", until(consoleHas("OUT "+id2+" from-second")))
	inBrowser(t, ctx, "full screen", chromedp.Click(chromedp.CSS("#console-full")),
		until(`document.fullscreenElement && document.fullscreenElement.id === "console"`), screenshot(t, "console-fullscreen"),
		chromedp.Evaluate[chromedp.Void](`document.exitFullscreen()`, chromedp.EvalAwaitPromise), until(`!document.fullscreenElement`))

	// As a viewer: everything shows, no button does.
	inBrowser(t, ctx, "the overview's sparklines", chromedp.Navigate(url),
		until(fmt.Sprintf(`Number((document.querySelector('%s svg.spark') || {dataset: {}}).dataset.points) >= 3`, row)),
		screenshot(t, "overview-sparklines"))
	inBrowser(t, ctx, "log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(token))
	inBrowser(t, ctx, "log in as viewer", chromedp.Navigate(url), chromedp.WaitVisible(token),
		chromedp.SetValue(token, viewer), submit, state("running"), screenshot(t, "overview-read-only"))
	buttons, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("button[data-action]").length`))
	if err != nil || buttons != 0 {
		t.Errorf("a read-only login sees %d action buttons (%v)", buttons, err)
	}
	// The viewer's console shows output and takes no typing: not from
	// the terminal, not from a websocket the page would not open. A line
	// run after both shows that neither reached the guest before it.
	roID, forgedID := uniq(), uniq()
	inBrowser(t, ctx, "the viewer's console", chromedp.Navigate(vmURL), until(consoleHas("OUT "+id2+" from-second")),
		until(`document.querySelector("#console-status").textContent === "connected, read only"`),
		typeInto("RUN "+roID+" echo viewer-typed"), screenshot(t, "console-read-only"))
	refusal, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`new Promise((ok) => {
		const ws = new WebSocket("wss://" + location.host + "/v1/vms/%s/console/ws?lines=1");
		ws.onopen = () => ws.send(new TextEncoder().encode("RUN %s echo forged\r"));
		ws.onmessage = (e) => { if (typeof e.data === "string" && e.data.includes("error")) { ws.close(); ok(e.data); } };
		setTimeout(() => ok("no answer"), 10000);
	})`, name, forgedID), chromedp.EvalAwaitPromise))
	if err != nil || !strings.Contains(refusal, "needs the admin scope") {
		t.Errorf("a viewer's websocket input: %q (%v), want a refusal", refusal, err)
	}
	if out, rc := d.guestExec(name, "echo after-the-viewer", 30*time.Second); rc != 0 || strings.TrimSpace(out) != "after-the-viewer" {
		t.Fatalf("the guest after the viewer typed: %q rc=%d", out, rc)
	}
	if log := d.console(name); strings.Contains(log, "OUT "+roID) || strings.Contains(log, "OUT "+forgedID) {
		t.Errorf("a read-only viewer's typing ran in the guest:\n%s", log)
	}
	// Requests the page would not send: no CSRF token; the session's
	// token with a read scope. Both 403, and the VM runs on.
	for what, js := range map[string]string{
		"without the CSRF token": fmt.Sprintf(`fetch("/v1/vms/%s/stop", {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"}).then(r => r.status)`, name),
		"as a viewer": fmt.Sprintf(`fetch("/ui/api/session").then(r => r.json()).then(s => fetch("/v1/vms/%s/stop",
			{method: "POST", headers: {"Content-Type": "application/json", "X-Godwit-CSRF": s.csrf}, body: "{\"force\": true}"})).then(r => r.status)`, name),
	} {
		status, err := chromedp.Run(ctx, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
		if err != nil || status != 403 {
			t.Errorf("a stop %s: %d (%v), want 403", what, status, err)
		}
	}
	if v, err := d.C.GetVM(ctxT(t, 30*time.Second), name); err != nil || v.State != "running" {
		t.Fatalf("after the refused stops: %v %v", v.State, err)
	}

	// The CLI's console takes input over the same websocket: a line on
	// its stdin runs in the guest, and its output comes back on stdout.
	cliID := uniq()
	cmd := exec.Command(godwitBin, "vm", "console", name, "--input", "--lines", "5")
	cmd.Env = append(os.Environ(), "GODWIT_SOCKET="+d.Socket)
	cmd.Stdin = strings.NewReader("RUN " + cliID + " echo cli-$((2+3))\n")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	seen := make(chan string, 1)
	go func() {
		var all strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "OUT "+cliID+" cli-5") {
				break
			}
		}
		seen <- all.String()
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case printed := <-seen:
		if !strings.Contains(printed, "OUT "+cliID+" cli-5") {
			t.Errorf("vm console --input printed:\n%s", printed)
		}
	case <-time.After(time.Minute):
		t.Errorf("vm console --input: no answer from the guest in a minute\nconsole log:\n%s", d.console(name))
	}
}
