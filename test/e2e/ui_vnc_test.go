package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// canvasLit: the graphical console's noVNC canvas has the screen's size
// and more than 1000 pixels that are not black.
const canvasLit = `(() => { const c = document.querySelector("#vnc-screen canvas");
	if (!c || c.width !== 720 || c.height !== 400) return false;
	const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data; let n = 0;
	for (let i = 0; i < d.length; i += 4) if (d[i] | d[i + 1] | d[i + 2]) n++;
	return n > 1000; })()`

// The VM page of a graphics: vnc VM opens its graphical console in
// noVNC: connected, the guest's screen painted on its canvas, full
// screen; its Ctrl-Alt-Del restarts the guest's kernel. A read-only login watches
// the same screen without the buttons that type.
func TestWebGraphicalConsole(t *testing.T) {
	d, addr, name := startVNCGuest(t, "e2e-uivnc-")
	admin := adminToken(t, d)
	viewer := strings.TrimSpace(d.MustCLI("token", "create", "--name", "e2e-uivnc-viewer", "--scope", "read", "-q"))
	login := func(token string, then ...chromedp.Action[chromedp.Void]) []chromedp.Action[chromedp.Void] {
		return append([]chromedp.Action[chromedp.Void]{chromedp.Navigate("https://" + addr + "/ui/"), chromedp.WaitVisible(chromedp.CSS("#token")),
			chromedp.SetValue(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#login-submit")),
			chromedp.WaitVisible(chromedp.CSS("#vm-" + name)), chromedp.Click(chromedp.CSS("#vm-" + name + " a")), chromedp.WaitVisible(chromedp.CSS("#vnc-open"))}, then...)
	}
	connected := until(`document.querySelector("#vnc").dataset.state === "connected"`)

	ctx := browser(t)
	inBrowser(t, ctx, "open the graphical console", login(admin, chromedp.Click(chromedp.CSS("#vnc-open")), connected,
		until(canvasLit), screenshot(t, "vnc"))...)
	inBrowser(t, ctx, "full screen", chromedp.Click(chromedp.CSS("#vnc-full")),
		until(`!!document.fullscreenElement && document.fullscreenElement.id === "vnc"`), until(canvasLit), screenshot(t, "vnc-full-screen"),
		chromedp.Click(chromedp.CSS("#vnc-full")), until(`!document.fullscreenElement`))

	// A read-only login in another browser: the same screen, view only,
	// and no Ctrl-Alt-Del; the first viewer stays connected.
	second := browser(t)
	inBrowser(t, second, "the read-only viewer", login(viewer, chromedp.Click(chromedp.CSS("#vnc-open")), connected, until(canvasLit),
		until(`document.querySelector("#vnc-status").textContent === "connected, view only" && !document.querySelector("#vnc-cad") && document.querySelector("#vnc").rfb.viewOnly`),
		screenshot(t, "vnc-read-only"))...)
	inBrowser(t, ctx, "the first viewer with a second", connected)

	// Ctrl-Alt-Del reaches the guest: its kernel restarts at once. (Its
	// next boot was seen to stall at the BIOS's "Booting from ROM" after
	// noVNC's keys, which come as QEMU extended key events, while the
	// same keys as plain key events reboot it through: TestVNCConsole.)
	offset := consoleSize(t, d, name)
	inBrowser(t, ctx, "Ctrl-Alt-Del", chromedp.Click(chromedp.CSS("#vnc-cad")))
	d.waitConsole(name, `reboot: Restarting system`, offset, time.Minute)
	inBrowser(t, ctx, "the screen after Ctrl-Alt-Del", connected, until(canvasLit), screenshot(t, "vnc-ctrl-alt-del"))
	// The page's view changes on events (the reboot's) without closing it.
	inBrowser(t, ctx, "still one viewer", until(fmt.Sprintf(`document.querySelectorAll("#vnc-screen canvas").length === 1 && document.querySelector("#vm-state").textContent === %q`, "running")))
}
