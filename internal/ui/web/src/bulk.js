// Actions on several VMs at once from the overview: tick VMs, then start,
// stop, snapshot or migrate them. At most `parallel` run at a time (two
// migrations), so a hundred starts never land on the host at once; each
// VM gets its own result.
import { h, api, run } from "./lib.js";

export const parallel = 3;
const selected = new Set(); // VM names, kept across re-renders
let results = null;         // the results list, kept too
let busy = false;           // a bulk action runs

const calls = {
  start: (vm) => api("POST", `/v1/vms/${encodeURIComponent(vm)}/start`),
  stop: (vm) => api("POST", `/v1/vms/${encodeURIComponent(vm)}/stop`, {}),
  snapshot: (vm, stamp) => api("POST", `/v1/vms/${encodeURIComponent(vm)}/snapshots`, { name: "bulk-" + stamp }),
  migrate: (vm, stamp, to) => api("POST", `/v1/vms/${encodeURIComponent(vm)}/migrate`, { to }),
};
const labels = { start: "Start", stop: "Stop", snapshot: "Snapshot", migrate: "Migrate" };
const atOnce = { migrate: 2 };

// The peers that answered, for "Migrate to" (asked once per page load;
// none: the host stands alone and the control is not shown).
let peers = null;
let target = "";
function loadPeers() {
  peers = [];
  api("GET", "/v1/hosts").then((list) => {
    peers = (list.peers || []).filter((p) => p.reachable).map((p) => p.name);
    const bar = document.querySelector("#bulk");
    if (bar) bar.replaceWith(toolbar(null));
  }, () => {});
}
function targetSelect() {
  return h("select", { id: "bulk-to", "aria-label": "Host to migrate the selected VMs to",
    onchange: (e) => { target = e.target.value; sync(e.target.closest("main")); } },
  h("option", { value: "", text: "to host…" }), peers.map((p) => h("option", { value: p, text: p, selected: p === target })));
}

// pool runs task on each item, at most n at once.
export async function pool(items, n, task) {
  const queue = items.slice();
  const worker = async () => { while (queue.length) await task(queue.shift()); };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

// checkbox selects vm for a bulk action.
export function checkbox(vm) {
  return h("input", { type: "checkbox", class: "pick", "data-vm": vm, "aria-label": `Select ${vm}`, checked: selected.has(vm),
    onchange: (e) => { if (e.target.checked) selected.add(vm); else selected.delete(vm); sync(e.target.closest("main")); } });
}

export function selectAll(vms) {
  return h("input", { type: "checkbox", id: "pick-all", "aria-label": "Select every VM", checked: vms.length > 0 && vms.every((v) => selected.has(v)),
    onchange: (e) => {
      for (const vm of vms) if (e.target.checked) selected.add(vm); else selected.delete(vm);
      const main = e.target.closest("main");
      for (const c of main.querySelectorAll("input.pick")) c.checked = e.target.checked;
      sync(main);
    } });
}

function sync(main) {
  const bar = main.querySelector("#bulk");
  if (!bar) return;
  bar.querySelector("#bulk-count").textContent = `${selected.size} selected`;
  for (const b of bar.querySelectorAll("button")) b.disabled = selected.size === 0 || busy || (b.dataset.bulk === "migrate" && !target);
}

// toolbar is the bulk actions' bar, with the results of the last run.
// known: the VMs on the page (null: keep the selection as it is).
export function toolbar(known) {
  if (known) for (const vm of [...selected]) if (!known.includes(vm)) selected.delete(vm);
  if (peers === null) loadPeers();
  if (target && !peers.includes(target)) target = "";
  if (!results) results = h("ul", { id: "bulk-results", class: "bulk-results", "aria-label": "Results of the bulk action" });
  const bar = h("div", { id: "bulk", class: "toolbar bulk", role: "group", "aria-label": "Actions on the selected VMs" },
    h("span", { id: "bulk-count", class: "muted", text: `${selected.size} selected` }),
    Object.keys(calls).map((action) => action === "migrate" && !peers.length ? null : [action === "migrate" ? targetSelect() : null,
      h("button", { type: "button", "data-bulk": action, disabled: selected.size === 0 || busy || (action === "migrate" && !target),
        "aria-label": `${labels[action]} the selected VMs`, onclick: () => go(bar, action) }, labels[action])]).flat(),
    results);
  return bar;
}

async function go(bar, action) {
  const vms = [...selected];
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "").replace("T", "-");
  busy = true;
  if (bar.closest("main")) sync(bar.closest("main"));
  results.replaceChildren();
  const lines = new Map(vms.map((vm) => {
    const li = h("li", { "data-vm": vm, role: "status" }, h("span", { class: "muted", text: `${labels[action]} ${vm}: waiting` }));
    results.append(li);
    return [vm, li];
  }));
  const to = target;
  const what = (vm) => action === "migrate" ? `Migrate ${vm} to ${to}` : `${labels[action]} ${vm}`;
  await pool(vms, atOnce[action] || parallel, (vm) => run(lines.get(vm), what(vm), () => calls[action](vm, stamp, to)));
  busy = false;
  const main = results.closest("main");
  if (main) sync(main);
}
