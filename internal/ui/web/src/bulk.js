// Actions on several VMs at once from the overview: tick VMs, then start,
// stop or snapshot them. At most `parallel` run at a time, so a hundred
// starts never land on the host at once; each VM gets its own result.
import { h, api, run } from "./lib.js";

export const parallel = 3;
const selected = new Set(); // VM names, kept across re-renders
let results = null;         // the results list, kept too
let busy = false;           // a bulk action runs

const calls = {
  start: (vm) => api("POST", `/v1/vms/${encodeURIComponent(vm)}/start`),
  stop: (vm) => api("POST", `/v1/vms/${encodeURIComponent(vm)}/stop`, {}),
  snapshot: (vm, stamp) => api("POST", `/v1/vms/${encodeURIComponent(vm)}/snapshots`, { name: "bulk-" + stamp }),
};
const labels = { start: "Start", stop: "Stop", snapshot: "Snapshot" };

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
  for (const b of bar.querySelectorAll("button")) b.disabled = selected.size === 0 || busy;
}

// toolbar is the bulk actions' bar, with the results of the last run.
export function toolbar(known) {
  for (const vm of [...selected]) if (!known.includes(vm)) selected.delete(vm);
  if (!results) results = h("ul", { id: "bulk-results", class: "bulk-results", "aria-label": "Results of the bulk action" });
  const bar = h("div", { id: "bulk", class: "toolbar bulk", role: "group", "aria-label": "Actions on the selected VMs" },
    h("span", { id: "bulk-count", class: "muted", text: `${selected.size} selected` }),
    Object.keys(calls).map((action) => h("button", { type: "button", "data-bulk": action, disabled: selected.size === 0 || busy,
      "aria-label": `${labels[action]} the selected VMs`, onclick: () => go(bar, action) }, labels[action])),
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
  await pool(vms, parallel, (vm) => run(lines.get(vm), `${labels[action]} ${vm}`, () => calls[action](vm, stamp)));
  busy = false;
  const main = results.closest("main");
  if (main) sync(main);
}
