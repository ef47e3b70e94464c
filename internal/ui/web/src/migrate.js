// Moving a VM to another host from its page: pick a peer that answers
// and a mode, then the status line's bar follows the operation, and the
// report says how long it took, how long the guest was paused and what
// was sent. Once the VM has left, its page says where it went.
import { h, api, run, bytes } from "./lib.js";

const ms = (n) => (n >= 10000 ? (n / 1000).toFixed(1) + " s" : n + " ms");

// summary is a migration report (api.MigrationReport) in one line.
export function summary(rep) {
  const disks = rep.copiedDisks ? `, ${rep.copiedDisks} disk${rep.copiedDisks > 1 ? "s" : ""} copied` : rep.sharedDisks ? ", disks shared" : "";
  return `${rep.mode} move ${rep.from} → ${rep.to}: ${ms(rep.totalMs)} in all, guest paused ${ms(rep.downtimeMs)}, ` +
    `${bytes(rep.bytes || 0)} sent${disks}${rep.postcopy ? ", finished in postcopy" : ""}`;
}

// report is the migration report as a small table, for the page.
function report(rep) {
  const row = (k, v) => h("tr", {}, h("th", { text: k }), h("td", { text: v }));
  const p = rep.phases;
  return h("table", { class: "report", id: "migrate-report", "aria-label": "Migration report" }, h("tbody", {},
    row("From → to", `${rep.from} → ${rep.to}`), row("Mode", rep.mode + (rep.policy ? ` (${rep.policy})` : "")),
    row("Total", ms(rep.totalMs)), row("Guest paused", ms(rep.downtimeMs)),
    row("Sent", `${bytes(rep.bytes || 0)} (memory ${bytes(rep.memoryBytes || 0)}, disks ${bytes(rep.diskBytes || 0)})`),
    row("Disks", `${rep.sharedDisks} shared, ${rep.copiedDisks} copied`),
    p ? row("Phases", `begin ${ms(p.beginMs)}, prepare ${ms(p.prepareMs)}, perform ${ms(p.performMs)}, finish ${ms(p.finishMs)}`) : null));
}

// migratePanel is the VM page's "Migrate" section for an admin. on.start()
// is called as a move starts, on.end(rep, peer) when it ended: rep is the
// report when the VM has left for peer (its entry in /v1/hosts), else null.
export function migratePanel(vm, on) {
  const status = h("div", { class: "status", id: "migrate-status", role: "status" });
  const to = h("select", { id: "migrate-to", name: "migrate-to", required: true }, h("option", { value: "", text: "loading hosts…" }));
  const mode = h("select", { id: "migrate-mode", name: "migrate-mode" },
    h("option", { value: "", text: "automatic (live if running, cold if stopped)" }),
    h("option", { value: "live", text: "live" }), h("option", { value: "offline", text: "offline (paused, then resumed there)" }),
    h("option", { value: "cold", text: "cold (stopped VM)" }));
  const go = h("button", { type: "submit", id: "migrate-submit", class: "primary", disabled: true }, "Migrate");
  const form = h("form", { class: "inline-form", id: "migrate-form", "aria-label": `Migrate ${vm}` },
    h("label", { for: "migrate-to", text: "To host" }), to,
    h("label", { for: "migrate-mode", text: "Mode" }), mode, go);
  const box = h("section", { id: "migrate-box", "aria-label": "Migrate" }, form, status);
  let peers = [];
  api("GET", "/v1/hosts").then((list) => {
    peers = list.peers || [];
    to.replaceChildren(...(peers.length ? [h("option", { value: "", text: "choose a host" })] : [h("option", { value: "", text: "no peers: godwit host add joins one" })]),
      ...peers.map((p) => h("option", { value: p.name, disabled: !p.reachable, text: p.reachable ? p.name : `${p.name} (not answering${p.error ? ": " + p.error : ""})` })));
    go.disabled = !peers.some((p) => p.reachable);
  }, (err) => to.replaceChildren(h("option", { value: "", text: "hosts: " + err.message })));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!to.value) { to.focus(); return; }
    go.disabled = true;
    const body = { to: to.value };
    if (mode.value) body.mode = mode.value;
    on.start();
    const out = await run(status, `Migrate ${vm} to ${to.value}`, () => api("POST", `/v1/vms/${encodeURIComponent(vm)}/migrate`, body));
    go.disabled = false;
    const rep = out.ok && out.op && out.op.result ? out.op.result : null;
    on.end(rep, rep && peers.find((p) => p.name === rep.to));
  });
  return { box };
}

// movedPage is what the VM's page shows once the VM runs elsewhere.
export function movedPage(vm, rep, peer) {
  const there = peer && peer.url ? h("a", { id: "moved-link", href: `${peer.url}/ui/#/vm/${encodeURIComponent(vm)}`, text: `Open ${vm} on ${rep.to}` }) : null;
  return [h("p", {}, h("a", { href: "#/", text: "← Overview" })),
    h("h1", { text: vm }),
    h("p", { id: "moved", role: "status", text: `${vm} now runs on ${rep.to}: this host no longer has it.` }),
    there ? h("p", {}, there) : null,
    h("p", { class: "ok", text: summary(rep) }), report(rep)];
}
