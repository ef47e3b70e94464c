package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

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

func screenshot(t *testing.T, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, tg) // 100: PNG
		if err != nil {
			return err
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
	addr := freeAddr(t)
	d := StartDaemon(t, "--listen", addr)
	name := "e2e-ui-" + uniq()
	d.createVM(guestSpec(t, name), true)
	d.waitConsole(name, `GODWIT-GUEST-UP`, 0, 2*time.Minute)
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
	d.waitConsole(name, `GODWIT-GUEST-UP`, offset, 2*time.Minute)

	inBrowser(t, ctx, "the VM's page", chromedp.Click(chromedp.CSS(row+" a")),
		until(`(document.querySelector("#console") || {textContent: ""}).textContent.includes("GODWIT-GUEST-UP")`), screenshot(t, "vm"))

	// As a viewer: everything shows, no button does.
	inBrowser(t, ctx, "log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(token))
	inBrowser(t, ctx, "log in as viewer", chromedp.Navigate(url), chromedp.WaitVisible(token),
		chromedp.SetValue(token, viewer), submit, state("running"), screenshot(t, "overview-read-only"))
	buttons, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("button[data-action]").length`))
	if err != nil || buttons != 0 {
		t.Errorf("a read-only login sees %d action buttons (%v)", buttons, err)
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
}
