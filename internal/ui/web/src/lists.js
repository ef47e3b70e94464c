// Read-only lists: images, networks, pools and volumes, backups and
// operations, each a page of the nav (#/images ...). Tables scroll
// inside their box on a narrow screen.
import { h, api, show, human, when, toast } from "./lib.js";

// table: columns are [heading, cell(row), {wide}] (wide ones hide on a phone).
function table(id, rows, columns, empty) {
  const cls = (c) => (c[2] && c[2].wide ? "wide" : null);
  return h("div", { class: "scroll" }, h("table", { id },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: cls(c), text: c[0] })))),
    h("tbody", {}, rows.length ? rows.map((r) => h("tr", {}, columns.map((c) => {
      const v = c[1](r);
      return h("td", { class: cls(c) }, v == null ? "" : v);
    }))) : h("tr", {}, h("td", { colspan: columns.length, class: "muted", text: empty })))));
}

const yes = (b) => (b ? "yes" : "no");
const vmLink = (name) => h("a", { href: "#/vm/" + encodeURIComponent(name), text: name });
const links = (names) => (names || []).flatMap((n, i) => (i ? [", ", vmLink(n)] : [vmLink(n)]));

const pages = {
  images: { title: "Images", load: () => api("GET", "/v1/images"), render: (r) => table("images", r.images || [], [
    ["Name", (i) => i.name], ["Format", (i) => i.format], ["Size", (i) => human(i.virtualSize)],
    ["On disk", (i) => human(i.actualSize)], ["Kernel", (i) => yes(i.boot && (i.boot.kernel || i.boot.image)), { wide: true }],
    ["Used by", (i) => links(i.usedBy), { wide: true }], ["Source", (i) => i.source, { wide: true }]], "No images: godwit image import NAME --url URL") },
  networks: { title: "Networks", load: () => api("GET", "/v1/networks"), render: (r) => table("networks", r.networks || [], [
    ["Name", (n) => n.name + (n.managed ? "" : " (unmanaged)")], ["Type", (n) => n.type], ["Subnet", (n) => n.subnet],
    ["Bridge", (n) => n.bridge, { wide: true }], ["Active", (n) => yes(n.active)], ["VMs", (n) => links(n.vms), { wide: true }],
    ["Problem", (n) => n.error, { wide: true }]], "No networks.") },
  storage: { title: "Pools and volumes", load: async () => {
    const [p, v] = await Promise.all([api("GET", "/v1/pools"), api("GET", "/v1/volumes")]);
    return { pools: p.pools || [], volumes: v.volumes || [] };
  }, render: (r) => [
    table("pools", r.pools, [
      ["Pool", (p) => p.name + (p.default ? " (VM disks)" : "")], ["Type", (p) => p.type], ["Path", (p) => p.path, { wide: true }],
      ["Used", (p) => human(p.allocation)], ["Free", (p) => human(p.available)], ["Size", (p) => human(p.capacity), { wide: true }],
      ["Volumes", (p) => String(p.volumes)], ["Shared", (p) => yes(p.shared), { wide: true }]], "No pools."),
    h("h2", { text: "Volumes" }),
    table("volumes", r.volumes, [
      ["Pool", (v) => v.pool], ["Volume", (v) => v.name], ["Format", (v) => v.format, { wide: true }],
      ["Size", (v) => human(v.capacity)], ["On disk", (v) => human(v.allocation)], ["Used by", (v) => links(v.usedBy)]], "No volumes.")] },
  backups: { title: "Backups", load: () => api("GET", "/v1/backups"), render: (r) => table("all-backups", (r.backups || []).slice().reverse(), [
    ["Backup", (b) => b.id], ["VM", (b) => vmLink(b.vm)], ["Taken", (b) => when(b.createdAt)], ["Mode", (b) => b.mode],
    ["Data", (b) => human(b.dataBytes)], ["Stored", (b) => human(b.stats && b.stats.bytesStored), { wide: true }],
    ["Seconds", (b) => b.stats ? b.stats.seconds.toFixed(1) : "", { wide: true }]], "No backups: back a VM up from its page.") },
  operations: { title: "Operations", load: () => api("GET", "/v1/operations"), render: (r) => operationsTable("operations", r.operations || []) },
};

// operationsTable lists operations, newest first (the API's order).
export function operationsTable(id, ops) {
  return table(id, ops, [
    ["Kind", (o) => o.kind], ["Target", (o) => o.target], ["State", (o) => h("span", { class: "state " + o.state, text: o.state })],
    ["Started", (o) => when(o.createdAt), { wide: true }], ["Took", (o) => took(o), { wide: true }],
    ["Result", (o) => o.error || (o.progress && o.progress.message) || ""]], "No operations yet.");
}

function took(o) {
  if (!o.finishedAt) return "";
  const s = (new Date(o.finishedAt) - new Date(o.createdAt)) / 1000;
  return s < 1 ? "<1 s" : s < 120 ? `${s.toFixed(0)} s` : `${(s / 60).toFixed(0)} min`;
}

export const listPages = Object.keys(pages);

export async function showList(name) {
  const p = pages[name];
  let data;
  try { data = await p.load(); } catch (err) { toast(`${p.title}: ${err.message}`); return; }
  show(h("h1", { text: p.title }), p.render(data));
}
