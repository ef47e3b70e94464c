package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// controlsJS marks every visible, enabled control of the page with a
// data-kbd number and returns, for each, its number and its accessible
// name as a screen reader would read it (aria-label, aria-labelledby, a
// label, its text, title or alt); "" when it has none.
const controlsJS = `(() => {
	const sel = 'a[href], button, input:not([type=hidden]), select, textarea, [tabindex]:not([tabindex="-1"])';
	const seen = [...document.querySelectorAll(sel)].filter(el => !el.disabled && el.getClientRects().length > 0 &&
		getComputedStyle(el).visibility !== "hidden" && !el.closest("[hidden], [inert]"));
	return seen.map((el, i) => {
		el.dataset.kbd = String(i);
		const by = (el.getAttribute("aria-labelledby") || "").split(/\s+/).map(id => document.getElementById(id)).filter(Boolean);
		const label = (el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]')) || el.closest("label");
		const name = el.getAttribute("aria-label") || by.map(e => e.textContent).join(" ") || (label && label.textContent) ||
			(el.tagName !== "INPUT" && el.tagName !== "SELECT" && el.tagName !== "TEXTAREA" ? el.textContent : "") || el.title || el.alt || "";
		return { n: i, name: name.trim(), group: el.type === "radio" ? el.name : "", what: el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.className && typeof el.className === "string" ? "." + el.className.split(" ")[0] : "") };
	});
})()`

type control struct {
	N     int    `json:"n"`
	Name  string `json:"name"`
	What  string `json:"what"`
	Group string `json:"group"` // a radio button's group: Tab enters it once, arrows move within
}

// Every control of the page's views can be reached with Tab alone and has
// a name a screen reader reads; the serial console takes Tab for the
// guest (shells complete with it), and Shift+Tab leaves it.
func TestWebKeyboard(t *testing.T) {
	concurrent(t)
	addr := freeAddr(t)
	d := StartDaemon(t, "--listen", addr)
	name := "e2e-kbd-" + uniq()
	d.createVM(guestSpec(t, name), true)
	d.waitConsole(name, `GODWIT-GUEST-UP`, 0, guestWait)
	d.MustCLI("snapshot", "create", name, "kbd-snap")
	admin := strings.TrimSpace(d.MustCLI("token", "create", "--name", "e2e-kbd-"+uniq(), "--scope", "admin", "-q"))
	url := "https://" + addr + "/ui/"
	ctx := browser(t)

	// Log in with the keyboard only: the token field has the focus.
	inBrowser(t, ctx, "log in by keyboard", chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#token")),
		until(`document.activeElement && document.activeElement.id === "token"`),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: admin})
			return err
		}), chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS("#vm-"+name)))

	views := []struct{ name, hash, ready string }{
		{"overview", "#/", "#vm-" + name},
		{"vm", "#/vm/" + name, `#snap-kbd-snap`},
		{"new", "#/new", "form#create"},
		{"images", "#/images", "main h1"},
		{"networks", "#/networks", "main h1"},
		{"storage", "#/storage", "main h1"},
		{"backups", "#/backups", "main h1"},
		{"operations", "#/operations", "main h1"},
	}
	for _, v := range views {
		t.Run(v.name, func(t *testing.T) {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			inBrowser(t, sctx, "open "+v.hash, chromedp.Navigate(url+v.hash), chromedp.WaitVisible(chromedp.CSS(v.ready)),
				until(`!document.querySelector("#console-status") || document.querySelector("#console-status").textContent === "connected"`))
			time.Sleep(500 * time.Millisecond) // the view's late parts (lists, graphs) settle
			controls, err := chromedp.Run(sctx, chromedp.Evaluate[[]control](controlsJS))
			if err != nil {
				t.Fatal(err)
			}
			if len(controls) < 3 {
				t.Fatalf("only %d controls on %s: %+v", len(controls), v.hash, controls)
			}
			for _, c := range controls {
				if c.Name == "" {
					t.Errorf("%s on %s has no name a screen reader could read", c.What, v.hash)
				}
			}
			// Tab from the first control until focus comes round again or
			// sits in the console; note every control it lands on.
			reached := map[int]bool{0: true}
			inConsole := false
			if _, err := chromedp.Run(sctx, chromedp.Evaluate[bool](`(document.querySelector('[data-kbd="0"]').focus(), true)`)); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3*len(controls)+10; i++ {
				if _, err := chromedp.Run(sctx, chromedp.KeyEvent(kb.Tab)); err != nil {
					t.Fatal(err)
				}
				at, err := chromedp.Run(sctx, chromedp.Evaluate[string](`(() => { const a = document.activeElement;
					return a && a.closest(".xterm") ? "console" : a && a.dataset && a.dataset.kbd !== undefined ? a.dataset.kbd : ""; })()`))
				if err != nil {
					t.Fatal(err)
				}
				if at == "console" {
					inConsole = true
					break
				}
				var n int
				if _, err := fmt.Sscan(at, &n); err == nil {
					if reached[n] && len(reached) == len(controls) {
						break
					}
					reached[n] = true
				}
			}
			if inConsole {
				// Tab is the guest's; Shift+Tab leaves for the control before.
				if _, err := chromedp.Run(sctx, chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift))); err != nil {
					t.Fatal(err)
				}
				left, err := chromedp.Run(sctx, chromedp.Evaluate[bool](`!document.activeElement.closest(".xterm")`))
				if err != nil || !left {
					t.Errorf("Shift+Tab did not leave the serial console (%v)", err)
				}
			}
			groups := map[string]bool{}
			for _, c := range controls {
				if c.Group != "" && reached[c.N] {
					groups[c.Group] = true
				}
			}
			var missed []string
			for _, c := range controls {
				if !reached[c.N] && !groups[c.Group] && !strings.Contains(c.What, "xterm") {
					missed = append(missed, fmt.Sprintf("%s %q", c.What, c.Name))
				}
			}
			if len(missed) > 0 {
				t.Errorf("Tab never reached %d of %d controls on %s: %s", len(missed), len(controls), v.hash, strings.Join(missed, ", "))
			}
			t.Logf("%s: %d controls, %d reached by Tab, console reached: %t", v.hash, len(controls), len(reached), inConsole)
		})
	}
}
