package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/godwit-project/godwit/api"
)

// The web page's forms: a VM made from the New VM form (bad values shown
// next to their field, creating nothing), which runs and prints its boot
// line in the page's console; its snapshots as a tree, taken, reverted
// (the guest's heartbeat goes back) and deleted; a backup taken and
// restored from its page; the lists; and the pages at a phone's width.
func TestWebPageForms(t *testing.T) {
	concurrent(t)
	addr := freeAddr(t)
	d := StartDaemon(t, "--listen", addr)
	g := Guest(t)
	admin := strings.TrimSpace(d.MustCLI("token", "create", "--name", "e2e-ui-forms", "--scope", "admin", "-q"))
	// A VM that holds a name (defined only): the form must not take it.
	taken := "e2e-uif-" + uniq()
	d.createVM(guestSpec(t, taken), false)
	url := "https://" + addr + "/ui/"
	ctx := browser(t)
	val := func(id, v string) chromedp.Action[chromedp.Void] { return chromedp.SetValue(chromedp.CSS("#"+id), v) }
	errorSays := func(field, words string) chromedp.Action[chromedp.Void] {
		return until(fmt.Sprintf(`document.querySelector("#%s-error").textContent.includes(%q) && document.querySelector("#%s").getAttribute("aria-invalid") === "true"`, field, words, field))
	}
	submit := chromedp.Click(chromedp.CSS("#create-submit"))
	inBrowser(t, ctx, "log in", chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SetValue(chromedp.CSS("#token"), admin), chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#vm-"+taken)))

	name := "e2e-uif-" + uniq()
	inBrowser(t, ctx, "the form", chromedp.Click(chromedp.CSS("#new-vm")), chromedp.WaitVisible(chromedp.CSS("#f-name")),
		chromedp.Click(chromedp.CSS("#f-mode-kernel")), chromedp.WaitVisible(chromedp.CSS("#f-kernel")),
		val("f-name", name), val("f-kernel", g.Kernel), val("f-initrd", g.Initrd), val("f-cmdline", "console=ttyS0 quiet"),
		val("f-cpus", "1"), val("f-memory", "lots"), val("f-disk-size", "64MiB"), screenshot(t, "create-form"))
	// Each bad value is shown next to its input, and nothing is made.
	inBrowser(t, ctx, "memory: lots", submit, errorSays("f-memory", `size "lots" does not start with a number`),
		until(`document.querySelector("#create-error").textContent === ""`), screenshot(t, "create-bad-memory"))
	inBrowser(t, ctx, "memory: 0", val("f-memory", "0"), submit, errorSays("f-memory", "memory: missing or 0"),
		until(`!document.querySelector("#f-memory-error").textContent.includes("lots")`))
	inBrowser(t, ctx, "a bad disk size", val("f-memory", "192MiB"), val("f-disk-size", "1.2.3G"), submit,
		errorSays("f-disk-size", `disks[0].size: size "1.2.3G"`), until(`document.querySelector("#f-memory-error").textContent === ""`))
	inBrowser(t, ctx, "a missing kernel", val("f-disk-size", "64MiB"), val("f-kernel", "/nonexistent/vmlinuz"), submit,
		errorSays("f-kernel", "no such file on this host"))
	inBrowser(t, ctx, "a taken name", val("f-kernel", g.Kernel), val("f-name", taken), submit,
		errorSays("f-name", "name: vm "+taken+" already exists"), screenshot(t, "create-taken-name"))
	if _, err := d.C.GetVM(ctxT(t, 10*time.Second), name); api.Status(err) != 404 {
		t.Fatalf("after the refused forms, vm %s: %v, want 404", name, err)
	}
	// Only godwit's own: the system libvirtd has other tests' domains.
	vms, err := d.C.ListVMs(ctxT(t, 10*time.Second))
	var managed []string
	for _, v := range vms {
		if v.Managed {
			managed = append(managed, v.Name)
		}
	}
	if err != nil || len(managed) != 1 {
		t.Fatalf("after the refused forms: VMs %v (%v), want only %s", managed, err, taken)
	}
	if v, err := d.C.GetVM(ctxT(t, 10*time.Second), taken); err != nil || v.State != api.VMStopped {
		t.Fatalf("the VM whose name the form tried: %+v %v", v.State, err)
	}

	// The good form: the create's progress shows, then the VM's page, its
	// console with the boot line.
	inBrowser(t, ctx, "create", val("f-name", name), submit,
		until(`!!document.querySelector("#create-status").textContent || location.hash.startsWith("#/vm/")`),
		until(fmt.Sprintf(`location.hash === "#/vm/%s"`, name)))
	// A loaded machine can take a while to boot the guest under TCG.
	d.waitConsole(name, `GODWIT-GUEST-UP`, 0, 3*time.Minute)
	inBrowser(t, ctx, "the boot line in the page's console", until(consoleHas("GODWIT-GUEST-UP")), screenshot(t, "created-vm"))
	if v, err := d.C.GetVM(ctxT(t, 10*time.Second), name); err != nil || v.State != api.VMRunning || v.Spec.Memory != 192*api.MiB || len(v.Disks) != 1 || v.Disks[0].Size != 64*api.MiB {
		t.Fatalf("the VM the form made: %+v %v", v, err)
	}
	d.waitConsole(name, `^tick 2 `, 0, time.Minute)

	// Snapshots: s1 then s2 (s2's parent), both with memory; revert to s1
	// sends the heartbeat back; delete s2.
	snap := func(s string) []chromedp.Action[chromedp.Void] {
		return []chromedp.Action[chromedp.Void]{val("snapshot-name", s), chromedp.Click(chromedp.CSS("#snapshot-memory")), chromedp.Click(chromedp.CSS("#snapshot-take")),
			until(fmt.Sprintf(`!!document.querySelector('#snapshots [data-snapshot=%q]')`, s)),
			until(fmt.Sprintf(`document.querySelector("#snapshot-status").textContent.includes("Take snapshot %s: done")`, s))}
	}
	inBrowser(t, ctx, "take s1", snap("s1")...)
	atSnap := lastTick(d.console(name))
	inBrowser(t, ctx, "take s2", append(snap("s2"),
		until(`document.querySelector("#snapshots [data-snapshot=s1] > ul [data-snapshot=s2]") !== null`), screenshot(t, "snapshot-tree"))...)
	if s := d.snapshots(name); len(s) != 2 || s[1].Name != "s2" || s[1].Parent != "s1" || !s[1].Memory {
		t.Fatalf("snapshots after the page took two: %+v", s)
	}
	d.waitConsole(name, `^tick `+strconv.Itoa(atSnap+4)+` `, 0, time.Minute)
	before := lastTick(d.console(name))
	offset := consoleSize(t, d, name)
	inBrowser(t, ctx, "revert to s1", chromedp.Click(chromedp.CSS(`#snap-s1 button[data-snapshot-action="revert"]`)),
		until(`document.querySelector("#snapshot-status").textContent.includes("Revert to snapshot s1: done")`),
		until(`document.querySelector("#snap-s1 .snap .state") !== null`))
	line := d.waitConsole(name, `^tick \d+ `, offset, time.Minute)
	if after := atoi(tickRE.FindStringSubmatch(line)[1]); after >= before || after > atSnap+2 {
		t.Fatalf("heartbeat after the page's revert: tick %d (s1 at %d, %d before the revert)", after, atSnap, before)
	}
	inBrowser(t, ctx, "delete s2", chromedp.Click(chromedp.CSS(`#snap-s2 button[data-snapshot-action="delete"]`)),
		until(`document.querySelector("#snapshot-status").textContent.includes("Delete snapshot s2: done")`),
		until(`!document.querySelector("#snap-s2") && !!document.querySelector("#snap-s1")`), screenshot(t, "snapshot-deleted"))
	if s := d.snapshots(name); len(s) != 1 || s[0].Name != "s1" {
		t.Fatalf("snapshots after the page deleted s2: %+v", s)
	}

	// A backup from the VM's page, then restored as another VM.
	restored := name + "-r"
	inBrowser(t, ctx, "back up now", chromedp.Click(chromedp.CSS("#backup-now")),
		until(fmt.Sprintf(`document.querySelector("#backup-status").textContent.includes("Back up %s: done")`, name)),
		until(`document.querySelectorAll("#backups tr[data-backup]").length === 1`))
	inBrowser(t, ctx, "restore", chromedp.SetValue(chromedp.CSS(`#backups tr[data-backup] input`), restored),
		chromedp.Click(chromedp.CSS(`#backups tr[data-backup] button`)),
		until(`document.querySelector("#backup-status").textContent.includes(": done")`), screenshot(t, "backup-restored"))
	if v, err := d.C.GetVM(ctxT(t, 10*time.Second), restored); err != nil || v.Spec.Memory != 192*api.MiB {
		t.Fatalf("the VM the page restored: %+v %v", v, err)
	}

	// The lists, each from the nav.
	for _, c := range []struct{ page, table, has string }{
		{"images", "#images", ""}, {"networks", "#networks", ""},
		{"storage", "#volumes", name + "-root"}, {"backups", "#all-backups", name + "@"},
		{"operations", "#operations", "vm.create"},
	} {
		inBrowser(t, ctx, "the "+c.page+" list", chromedp.Click(chromedp.CSS(`#nav a[href="#/`+c.page+`"]`)),
			until(fmt.Sprintf(`!!document.querySelector(%q) && document.querySelector(%q).textContent.includes(%q)`, c.table, c.table, c.has)),
			screenshot(t, "list-"+c.page))
	}
	// Several VMs at once: start both (one runs already: its own result
	// says so, the other starts), then snapshot both.
	result := func(vm, state string) chromedp.Action[chromedp.Void] {
		return until(fmt.Sprintf(`(document.querySelector('#bulk-results li[data-vm=%q]') || {dataset: {}}).dataset.state === %q`, vm, state))
	}
	inBrowser(t, ctx, "bulk start", chromedp.Click(chromedp.CSS(`#nav a[href="#/"]`)), chromedp.WaitVisible(chromedp.CSS("#vm-"+taken)),
		chromedp.Click(chromedp.CSS(`#vm-`+taken+` input.pick`)), chromedp.Click(chromedp.CSS(`#vm-`+name+` input.pick`)),
		until(`document.querySelector("#bulk-count").textContent === "2 selected"`),
		chromedp.Click(chromedp.CSS(`#bulk button[data-bulk="start"]`)), result(taken, "succeeded"), result(name, "failed"),
		until(fmt.Sprintf(`document.querySelector('#bulk-results li[data-vm=%q]').textContent.includes("running")`, name)),
		chromedp.WaitVisible(chromedp.CSS(`#vm-`+taken+`[data-state="running"]`)), screenshot(t, "bulk-start"))
	inBrowser(t, ctx, "bulk snapshot", chromedp.Click(chromedp.CSS(`#bulk button[data-bulk="snapshot"]`)),
		result(taken, "succeeded"), result(name, "succeeded"), screenshot(t, "bulk-snapshot"))
	for _, vm := range []string{taken, name} {
		if s := d.snapshots(vm); len(s) == 0 || !strings.HasPrefix(s[len(s)-1].Name, "bulk-") {
			t.Errorf("vm %s after the bulk snapshot: %+v", vm, s)
		}
	}
	phoneWidth(t, ctx, url, name)
}

// graphsFit: every uPlot graph's canvas (which draws at a fixed width,
// whatever its box) is inside its box; graphsNarrower(px): all of them
// are narrower than px.
const (
	graphsFit      = `(() => { const g = [...document.querySelectorAll(".graph")]; return g.length === 4 && g.every((f) => f.querySelector(".uplot canvas").getBoundingClientRect().right <= f.getBoundingClientRect().right); })()`
	graphsNarrower = `((px) => [...document.querySelectorAll(".graph .uplot canvas")].every((c) => c.getBoundingClientRect().width < px))`
)

// phoneWidth: at 390x844 the overview and the VM page scroll only down.
func phoneWidth(t *testing.T, ctx context.Context, url, vm string) {
	t.Helper()
	fits := `document.scrollingElement.scrollWidth <= window.innerWidth`
	inBrowser(t, ctx, "a phone's width", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(url+"#/"), chromedp.WaitVisible(chromedp.CSS("#vm-"+vm)), chromedp.Sleep(300*time.Millisecond),
		screenshot(t, "phone-overview"), until(fits))
	inBrowser(t, ctx, "the VM page at a phone's width", chromedp.Navigate(url+"#/vm/"+vm), until(consoleHas("GODWIT-GUEST-UP")),
		chromedp.Sleep(300*time.Millisecond), screenshot(t, "phone-vm"), until(fits), until(graphsFit+" && !"+graphsNarrower+"(300)"))
	// The graphs follow their boxes when the window widens: at 600 px
	// they go two to a row, each narrower than the one a row at 390 px.
	inBrowser(t, ctx, "the graphs after a resize", chromedp.EmulateViewport(600, 844),
		until(graphsFit+" && "+graphsNarrower+"(300)"), screenshot(t, "vm-graphs-resized"))
	inBrowser(t, ctx, "the form at a phone's width", chromedp.Navigate(url+"#/new"), chromedp.WaitVisible(chromedp.CSS("#f-name")),
		screenshot(t, "phone-create"), until(fits))
}
