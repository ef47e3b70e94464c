// The VM page's snapshots, as the tree the API gives (each names its
// parent), with take, revert and delete; and its backups, with "back up
// now" and restore. Every action says in its section's status line that
// it runs, how far it is, and how it ended.
import { h, api, admin, run, human, when } from "./lib.js";

const vmPath = (vm) => "/v1/vms/" + encodeURIComponent(vm);

// snapshotTree renders snaps as nested lists from their parents.
function snapshotTree(vm, snaps, status, reload) {
  const names = new Set(snaps.map((s) => s.name));
  const kids = new Map();
  for (const s of snaps) {
    const parent = s.parent && names.has(s.parent) ? s.parent : "";
    if (!kids.has(parent)) kids.set(parent, []);
    kids.get(parent).push(s);
  }
  const act = (s, what, label, call, confirmText) => h("button", {
    type: "button", "data-snapshot-action": what, "aria-label": `${label} snapshot ${s.name}`, class: what === "delete" ? "danger" : "",
    onclick: async (e) => {
      if (confirmText && !confirm(confirmText)) return;
      e.currentTarget.disabled = true;
      await run(status, `${label} snapshot ${s.name}`, call);
      reload();
    } }, label);
  const node = (s) => h("li", { id: "snap-" + s.name, "data-snapshot": s.name, "data-parent": s.parent || "", role: "treeitem", "aria-expanded": kids.has(s.name) ? "true" : null },
    h("div", { class: "snap" },
      h("strong", { text: s.name }), s.current ? h("span", { class: "state running", text: "current" }) : null,
      h("span", { class: "muted", text: ` ${when(s.createdAt)} · ${s.kind}${s.memory ? " with memory" : ""} · VM ${s.vmState}${s.size ? " · " + human(s.size) : ""}` }),
      s.description ? h("span", { class: "muted", text: " · " + s.description }) : null,
      admin() ? h("span", { class: "actions" },
        act(s, "revert", "Revert to", () => api("POST", `${vmPath(vm)}/snapshots/${encodeURIComponent(s.name)}/revert`),
          `Revert ${vm} to snapshot ${s.name}? What changed since is lost.`),
        act(s, "delete", "Delete", () => api("DELETE", `${vmPath(vm)}/snapshots/${encodeURIComponent(s.name)}`),
          `Delete snapshot ${s.name} of ${vm}? This cannot be undone.`)) : null),
    kids.has(s.name) ? h("ul", { role: "group" }, kids.get(s.name).map(node)) : null);
  return snaps.length ? h("ul", { class: "tree", id: "snapshots", role: "tree", "aria-label": `Snapshots of ${vm}` }, (kids.get("") || []).map(node))
    : h("p", { class: "muted", id: "snapshots", text: "No snapshots." });
}

// showSnapshots fills box with vm's snapshots and, for an admin, the
// form that takes one.
export async function showSnapshots(box, vm) {
  const status = box.querySelector(".status") || h("div", { class: "status", id: "snapshot-status", role: "status" });
  const reload = () => showSnapshots(box, vm);
  let snaps;
  try { snaps = (await api("GET", vmPath(vm) + "/snapshots")).snapshots || []; }
  catch (err) { box.replaceChildren(h("p", { class: "error", text: "Snapshots: " + err.message })); return; }
  let form = null;
  if (admin()) {
    const name = h("input", { id: "snapshot-name", name: "snapshot-name", required: true, autocomplete: "off", placeholder: "before-upgrade" });
    const memory = h("input", { type: "checkbox", id: "snapshot-memory" });
    form = h("form", { class: "inline-form", id: "snapshot-form" },
      h("label", { for: "snapshot-name", text: "New snapshot" }), name,
      h("label", { class: "inline" }, memory, "with memory"),
      h("button", { type: "submit", id: "snapshot-take" }, "Take snapshot"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const n = name.value.trim();
      form.querySelector("button").disabled = true;
      const out = await run(status, `Take snapshot ${n}`, () => api("POST", vmPath(vm) + "/snapshots", { name: n, memory: memory.checked }));
      if (out.ok) name.value = "";
      reload();
    });
  }
  box.replaceChildren(...[form, snapshotTree(vm, snaps, status, reload), status].filter(Boolean));
}

// showBackups fills box with vm's backups: back up now, restore as.
export async function showBackups(box, vm) {
  const status = box.querySelector(".status") || h("div", { class: "status", id: "backup-status", role: "status" });
  const reload = () => showBackups(box, vm);
  let list;
  try { list = (await api("GET", "/v1/backups?vm=" + encodeURIComponent(vm))).backups || []; }
  catch (err) { box.replaceChildren(h("p", { class: "error", text: "Backups: " + err.message })); return; }
  const now = admin() ? h("button", { type: "button", id: "backup-now", onclick: async (e) => {
    e.currentTarget.disabled = true;
    await run(status, `Back up ${vm}`, () => api("POST", vmPath(vm) + "/backups", {}));
    reload();
  } }, "Back up now") : null;
  const restore = (b) => {
    const id = "restore-as-" + b.id.replace(/[^\w-]/g, "_");
    const as = h("input", { id, value: `${vm}-restored`, autocomplete: "off" });
    const f = h("form", { class: "inline-form" }, h("label", { for: id, text: "Restore as" }), as,
      h("button", { type: "submit", "aria-label": `Restore backup ${b.id}` }, "Restore"));
    f.addEventListener("submit", async (e) => {
      e.preventDefault();
      f.querySelector("button").disabled = true;
      await run(status, `Restore ${b.id} as ${as.value.trim()}`, () => api("POST", `/v1/backups/${encodeURIComponent(b.id)}/restore`, { as: as.value.trim() }));
      f.querySelector("button").disabled = false;
    });
    return f;
  };
  const rows = list.slice().reverse().map((b) => h("tr", { "data-backup": b.id },
    h("td", { text: b.id }), h("td", { text: when(b.createdAt) }), h("td", { text: b.mode }),
    h("td", { text: human(b.dataBytes) }), h("td", { class: "wide", text: human(b.stats && b.stats.bytesStored) }),
    admin() ? h("td", {}, restore(b)) : null));
  const table = h("div", { class: "scroll" }, h("table", { id: "backups" },
    h("thead", {}, h("tr", {}, h("th", { text: "Backup" }), h("th", { text: "Taken" }), h("th", { text: "Mode" }), h("th", { text: "Data" }),
      h("th", { class: "wide", text: "Stored" }), admin() ? h("th", { text: "Restore" }) : null)),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 6, class: "muted", text: "No backups." })))));
  box.replaceChildren(...[now ? h("div", { class: "toolbar" }, now) : null, table, status].filter(Boolean));
}
