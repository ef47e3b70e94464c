// godwit's web page: a few modules, no framework. It talks to the REST API
// with the session cookie, sends the session's CSRF token on every change,
// and follows /v1/events to keep what it shows current.
import { openConsole } from "./console.js";
import { showGraphs, sparkline, formats } from "./graphs.js";
import { $, h, api, human, sizeBytes, toast, show, admin, state, opChanged } from "./lib.js";
import { showCreate } from "./forms.js";
import { showSnapshots, showBackups } from "./snapshots.js";
import { showList, listPages, operationsTable } from "./lists.js";
import * as bulk from "./bulk.js";
import { graphicalPanel } from "./graphical.js";
import { migratePanel, movedPage, summary } from "./migrate.js";

let events = null;    // the EventSource
const ops = new Map(); // operation id -> its <li>
state.onLoggedOut = (msg) => showLogin(msg);

// ---- login ----

async function start() {
  try {
    state.session = await api("GET", "/ui/api/session");
  } catch (err) {
    showLogin("", err.data && err.data.continueAs);
    return;
  }
  loggedIn();
}

function showLogin(message, continueAs) {
  if (events) { events.close(); events = null; }
  closeVMParts();
  $("#who").textContent = "";
  $("#logout").hidden = true;
  $("#nav").hidden = true;
  $("#activity").hidden = true;
  const err = h("p", { class: "error", id: "login-error", role: "alert" }, message || "");
  const token = h("input", { id: "token", name: "token", type: "password", autocomplete: "current-password", placeholder: "gwt_…", required: true });
  const form = h("form", { class: "login", id: "login" },
    h("h1", { text: "Log in to godwit" }),
    h("label", { for: "token" }, "API token", token),
    h("p", { class: "muted" }, "Make one on the host with ", h("code", { text: "godwit token create --name NAME" }),
      " (add ", h("code", { text: "--scope read" }), " for a viewer)."),
    h("button", { class: "primary", type: "submit", id: "login-submit" }, "Log in"),
    continueAs ? h("button", { type: "button", id: "continue", onclick: () => login("") }, "Continue as " + continueAs) : null,
    err);
  form.addEventListener("submit", (e) => { e.preventDefault(); login(token.value); });
  show(form);
  token.focus();
}

async function login(token) {
  try {
    state.session = await api("POST", "/ui/api/login", { token });
  } catch (err) {
    $("#login-error").textContent = err.message;
    return;
  }
  loggedIn();
}

function loggedIn() {
  $("#who").textContent = state.session.name + (admin() ? "" : " (read only)");
  $("#logout").hidden = false;
  $("#nav").hidden = false;
  $("#nav-new").hidden = !admin();
  follow();
  route();
}

$("#activity-close").addEventListener("click", () => { $("#activity").hidden = true; });

$("#logout").addEventListener("click", async () => {
  try { await api("POST", "/ui/api/logout"); } catch { /* logged out anyway */ }
  state.session = null;
  showLogin("Logged out.");
});

// ---- views ----

window.addEventListener("hashchange", () => state.session && route());

// The VM page's console and graphs stay (connected, current) while the
// page re-renders on events; they close when it shows something else.
let vmParts = null; // {vm, console: {box, term: {close, refresh}}, graphs: {box, close}, snapshots: {box}, backups: {box}}
function closeVMParts(keep = null) {
  if (!vmParts) return;
  if (vmParts.console && vmParts.console.term) vmParts.console.term.close();
  if (vmParts.vnc) vmParts.vnc.close();
  if (vmParts.graphs && vmParts.graphs.close) vmParts.graphs.close();
  vmParts = keep;
}
// route shows what the address names. On an event only the views that
// show live state re-render: never a form someone is filling in.
function route(onEvent = false) {
  const hash = location.hash;
  const m = hash.match(/^#\/vm\/(.+)$/);
  const vm = m ? decodeURIComponent(m[1]) : null;
  const list = (hash.match(/^#\/(\w+)$/) || [])[1];
  if (vmParts && vmParts.vm !== vm) closeVMParts();
  for (const a of document.querySelectorAll("#nav a")) a.setAttribute("aria-current", a.getAttribute("href") === (hash || "#/") ? "page" : "false");
  if (m) return showVM(vm);
  if (hash === "#/new") return onEvent ? null : showCreate();
  if (listPages.includes(list)) return onEvent && list !== "operations" ? null : showList(list);
  return showOverview();
}

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => state.session && route(true), 250);
}

function card(title, value, note) {
  return h("div", { class: "card" }, h("div", { class: "muted", text: title }), h("div", { class: "big", text: value }), note ? h("div", { class: "muted", text: note }) : null);
}

async function showOverview() {
  let host, vms, usage, hosts;
  try {
    let list;
    [host, list, usage, hosts] = await Promise.all([api("GET", "/v1/host"), api("GET", "/v1/vms"),
      api("GET", "/v1/history?last=60").catch(() => ({ vms: [] })), api("GET", "/v1/hosts").catch(() => null)]);
    vms = list.vms || [];
  } catch (err) { if (state.session) toast(err.message); return; }
  $("#hostname").textContent = host.name;
  const running = vms.filter((v) => v.state === "running").length;
  const cards = h("div", { class: "cards" },
    card("Host", host.name, host.hostname),
    card("VMs", `${running} running`, `${vms.length} in all`),
    card("CPUs", String(host.cpus), `accelerator ${host.accel ? host.accel.chosen : "?"}`),
    card("Memory", `${human(host.memoryFree)} free`, `of ${human(host.memory)}`));
  const warnings = (host.warnings || []).map((w) => h("li", { text: w }));
  const byVM = new Map((usage.vms || []).map((u) => [u.vm, u]));
  const rows = vms.map((v) => vmRow(v, byVM.get(v.name)));
  const table = h("table", { id: "vms" },
    h("thead", {}, h("tr", {}, admin() ? h("th", { class: "pick" }, bulk.selectAll(vms.filter((v) => v.managed).map((v) => v.name))) : null, h("th", { text: "Name" }), h("th", { text: "State" }), h("th", { class: "wide", text: "CPUs" }),
      h("th", { class: "wide", text: "Memory" }), h("th", { text: "CPU use" }), h("th", { class: "wide", text: "Memory use" }), h("th", { class: "wide", text: "Host" }), admin() ? h("th", { class: "wide", text: "Actions" }) : null)),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 9, class: "muted", text: "No VMs yet: New VM makes one (or godwit vm create -f SPEC.yaml)" }))));
  show(h("div", { class: "title" }, h("h1", { text: "Overview" }), admin() ? h("a", { href: "#/new", class: "button primary", id: "new-vm" }, "New VM") : null), cards,
    warnings.length ? h("div", {}, h("h2", { text: "Problems" }), h("ul", { id: "warnings" }, warnings)) : null,
    hosts && (hosts.peers || []).length ? [h("h2", { text: "Hosts" }), hostTable(hosts)] : null,
    h("h2", { text: "Virtual machines" }), admin() ? bulk.toolbar(vms.map((v) => v.name)) : null, h("div", { class: "scroll" }, table));
}

// hostTable: this host and its peers, each with its VMs, CPU load and
// memory in use (a peer that does not answer says why).
function hostTable(list) {
  const meter = (label, value, max, text) => h("span", { class: "use-cell" },
    h("meter", { min: 0, max, value: Math.min(value, max), high: 0.85 * max, optimum: 0, "aria-label": label }), h("span", { class: "muted", text }));
  const row = (name, self, x, answering, why) => h("tr", { id: "host-" + name, "data-answering": String(answering) },
    h("td", {}, h("strong", { text: name }), self ? h("span", { class: "muted", text: " (this host)" }) : null),
    h("td", {}, answering ? h("span", { class: "state running", text: "answering" }) : h("span", { class: "state crashed", title: why || "", text: "not answering" }),
      !answering && why ? h("div", { class: "muted", text: why }) : null),
    h("td", { text: x ? String(x.vms) : "" }),
    h("td", { class: "wide", text: x ? String(x.cpus) : "" }),
    h("td", {}, x && x.cpus ? meter(`CPU load of ${name}`, x.load1 || 0, x.cpus, `load ${(x.load1 || 0).toFixed(2)}`) : null),
    h("td", {}, x && !isNaN(sizeBytes(x.memory)) ? meter(`Memory in use on ${name}`, sizeBytes(x.memory) - sizeBytes(x.memoryFree), sizeBytes(x.memory),
      `${human(x.memoryFree)} free of ${human(x.memory)}`) : null));
  return h("div", { class: "scroll" }, h("table", { id: "hosts" },
    h("thead", {}, h("tr", {}, ["Host", "State", "VMs", "CPUs", "CPU load", "Memory"].map((t, i) => h("th", { class: i === 3 ? "wide" : "", text: t })))),
    h("tbody", {}, row(list.self.name, true, list.self, true), (list.peers || []).map((p) => row(p.name, false, p.host, p.reachable, p.error)))));
}

function vmRow(v, u) {
  const spec = v.spec || {};
  return h("tr", { id: "vm-" + v.name, "data-state": v.state },
    admin() ? h("td", { class: "pick" }, v.managed ? bulk.checkbox(v.name) : null) : null,
    h("td", {}, h("a", { href: "#/vm/" + encodeURIComponent(v.name), text: v.name }), v.managed ? null : h("span", { class: "muted", text: " (unmanaged)" })),
    h("td", {}, h("span", { class: "state " + v.state, text: v.state })),
    h("td", { class: "wide", text: spec.cpus || "" }),
    h("td", { class: "wide", text: human(spec.memory) }),
    h("td", { class: "use" }, sparkline(u ? u.cpu : [], `CPU of ${v.name}`, formats.percent)),
    h("td", { class: "use wide" }, sparkline(u ? u.memoryRss : [], `Memory of ${v.name}`, formats.bytes)),
    h("td", { class: "wide", text: v.host || "" }),
    admin() ? h("td", { class: "wide" }, v.managed ? actions(v) : null) : null);
}

// The actions a VM in its state allows, as buttons.
function actions(v) {
  const b = (action, label, extra = {}) => h("button", Object.assign({ type: "button", "data-action": action, "data-vm": v.name,
    "aria-label": `${label} ${v.name}`, onclick: (e) => act(e.currentTarget, v.name, action) }, extra), label);
  const s = v.state;
  return h("div", { class: "actions" },
    s === "stopped" || s === "crashed" ? b("start", "Start") : null,
    s === "running" ? [b("stop", "Stop"), b("reboot", "Reboot"), b("pause", "Pause")] : null,
    s === "paused" ? b("resume", "Resume") : null,
    s === "running" || s === "paused" ? b("force-stop", "Force stop", { class: "danger" }) : null,
    b("delete", "Delete", { class: "danger" }));
}

async function act(button, vm, action) {
  const path = "/v1/vms/" + encodeURIComponent(vm);
  const calls = {
    start: () => api("POST", path + "/start"),
    stop: () => api("POST", path + "/stop", {}),
    "force-stop": () => api("POST", path + "/stop", { force: true }),
    reboot: () => api("POST", path + "/reboot"),
    pause: () => api("POST", path + "/pause"),
    resume: () => api("POST", path + "/resume"),
    delete: () => api("DELETE", path),
  };
  if (action === "delete" && !confirm(`Delete VM ${vm} and its disks? This cannot be undone.`)) return;
  if (action === "force-stop" && !confirm(`Pull the plug on ${vm}? Unsaved data in the guest is lost.`)) return;
  button.disabled = true;
  try {
    const out = await calls[action]();
    if (out && out.id && out.kind) trackOp(out);
    refreshSoon();
  } catch (err) {
    toast(`${action} ${vm}: ${err.message}`);
    button.disabled = false;
  }
}

async function showVM(name) {
  // A VM that migrated away: its page says where it went (this host's
  // API no longer knows it).
  if (vmParts && vmParts.vm === name && vmParts.moved) return show(...movedPage(name, vmParts.moved.rep, vmParts.moved.peer));
  let v;
  try { v = await api("GET", "/v1/vms/" + encodeURIComponent(name)); }
  catch (err) {
    // Mid-move the VM may already be gone from here: the panel says how it ends.
    if (err.status === 404 && vmParts && vmParts.vm === name && vmParts.migrating) return;
    if (state.session) toast(err.message);
    return;
  }
  const spec = v.spec || {};
  const disks = (v.disks || []).map((d) => h("tr", {}, h("td", { text: d.name }), h("td", { text: d.target }), h("td", { text: human(d.size) }), h("td", { class: "wide", text: d.path })));
  const nics = (v.nics || []).map((n) => h("tr", {}, h("td", { text: n.network || n.bridge || "" }), h("td", { text: n.mac || "" }),
    h("td", { text: (n.addresses || []).map((a) => a.ip || a).join(", ") })));
  if (!vmParts) vmParts = { vm: name };
  // The parts that keep their state (a connection, a status line) are
  // made once per visit and moved into each re-render.
  const part = (key, make) => {
    const fresh = !vmParts[key];
    if (fresh) vmParts[key] = { box: make() };
    return [vmParts[key].box, fresh];
  };
  const [consoleBox] = part("console", () => h("section", { id: "console", class: "console", "aria-label": "Serial console" }));
  const [graphsBox, freshGraphs] = part("graphs", () => h("section", { id: "usage", "aria-label": "Usage graphs" }));
  if (spec.graphics === "vnc" && !vmParts.vnc) vmParts.vnc = graphicalPanel(name, { h, toast, canType: admin() });
  const [snapBox, freshSnaps] = part("snapshots", () => h("section", { id: "snapshot-box", "aria-label": "Snapshots" }));
  const [backupBox, freshBackups] = part("backups", () => h("section", { id: "backup-box", "aria-label": "Backups" }));
  const [opsBox] = part("ops", () => h("section", { id: "vm-ops", "aria-label": `Operations on ${name}` }));
  const [eventsBox] = part("events", () => h("ol", { id: "vm-events", class: "events", "aria-label": `Events of ${name}`, "aria-live": "polite" },
    h("li", { class: "muted", text: "Events of this VM show here as they happen." })));
  const [migrateBox] = admin() && v.managed ? part("migrate", () => migratePanel(name, {
    start: () => { vmParts.migrating = true; },
    end: (rep, peer) => {
      if (!vmParts || vmParts.vm !== name) return;
      vmParts.migrating = false;
      if (rep) { closeVMParts({ vm: name, moved: { rep, peer } }); route(true); }
    },
  }).box) : [null];
  const box = (rows) => h("div", { class: "scroll" }, h("table", {}, h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { class: "muted", text: "none" })))));
  show(
    h("p", {}, h("a", { href: "#/", text: "← Overview" })),
    h("h1", {}, `${v.name} `, h("span", { class: "state " + v.state, id: "vm-state", text: v.state })),
    v.reason ? h("p", { class: "muted", text: v.reason }) : null,
    admin() && v.managed ? h("div", { class: "toolbar" }, actions(v)) : null,
    h("div", { class: "cards" }, card("CPUs", String(spec.cpus || "?")), card("Memory", human(spec.memory) || "?"), card("Host", v.host || $("#hostname").textContent)),
    h("h2", { text: "Disks" }), box(disks),
    h("h2", { text: "Network interfaces" }), box(nics),
    v.managed ? [h("h2", { text: "Snapshots" }), snapBox, h("h2", { text: "Backups" }), backupBox] : null,
    migrateBox ? [h("h2", { text: "Migrate" }), migrateBox] : null,
    h("h2", { text: "Usage" }), graphsBox,
    h("h2", { text: "Operations" }), opsBox,
    h("h2", { text: "Live events" }), eventsBox,
    vmParts.vnc ? [h("h2", { text: "Graphical console" }), vmParts.vnc.box] : null,
    h("h2", { text: "Serial console" }), v.managed ? consoleBox : h("p", { class: "muted", text: "godwit keeps no console for a VM it did not create." }));
  if (freshGraphs) vmParts.graphs.close = showGraphs(graphsBox, name, { h, api });
  api("GET", "/v1/operations?target=" + encodeURIComponent("vm/" + name)).then((r) => opsBox.replaceChildren(operationsTable("vm-ops-table", (r.operations || []).slice(0, 10))),
    (err) => opsBox.replaceChildren(h("p", { class: "error", text: "Operations: " + err.message })));
  if (v.managed && freshSnaps) showSnapshots(snapBox, name);
  if (v.managed && freshBackups) showBackups(backupBox, name);
  if (v.managed && !vmParts.console.term) vmParts.console.term = openConsole(consoleBox, name, { h, toast, canType: admin() });
  else if (vmParts.console.term) vmParts.console.term.refresh();
}

// ---- operations and events ----

function trackOp(op) {
  opChanged(op);
  $("#activity").hidden = false;
  let li = ops.get(op.id);
  if (!li) {
    li = h("li", { id: "op-" + op.id });
    ops.set(op.id, li);
    $("#ops").prepend(li);
  }
  const p = op.progress || {};
  const done = op.state === "succeeded" || op.state === "failed" || op.state === "cancelled";
  const pct = p.total ? Math.round((100 * p.current) / p.total) : done ? 100 : null;
  li.setAttribute("data-state", op.state);
  li.replaceChildren(...[
    h("div", {}, h("strong", { text: op.kind }), ` ${op.target} · `, h("span", { class: op.state === "failed" ? "error" : "", text: op.state })),
    pct == null ? h("progress", {}) : h("progress", { max: 100, value: pct, "aria-label": `${op.kind} ${pct}%` }),
    p.message ? h("div", { class: "muted", text: p.message }) : null,
    op.kind === "vm.migrate" && op.state === "succeeded" && op.result ? h("div", { class: "ok", text: summary(op.result) }) : null,
    op.error ? h("div", { class: "error", text: op.error }) : null].filter((k) => k != null));
}

// vmEvent adds an event about the VM whose page is open to its list, newest first.
function vmEvent(ev) {
  const vm = ev.vm || (ev.operation && ev.operation.target.startsWith("vm/") ? ev.operation.target.slice(3) : "");
  if (!vmParts || !vmParts.events || vm !== vmParts.vm) return;
  const list = vmParts.events.box;
  const what = ev.lifecycle ? `${ev.lifecycle.event}${ev.lifecycle.detail ? " (" + ev.lifecycle.detail + ")" : ""}`
    : ev.operation ? `${ev.operation.kind} ${ev.operation.state}${ev.operation.progress && ev.operation.progress.message ? ": " + ev.operation.progress.message : ""}` : ev.type;
  if (list.firstChild && list.firstChild.classList.contains("muted")) list.replaceChildren();
  list.prepend(h("li", { "data-type": ev.type }, h("time", { datetime: ev.time, text: new Date(ev.time).toLocaleTimeString() }), " ", what, ev.message ? " · " + ev.message : ""));
  while (list.children.length > 30) list.lastChild.remove();
}

function follow() {
  if (events) events.close();
  events = new EventSource("/v1/events");
  const onEvent = (e) => {
    let ev;
    try { ev = JSON.parse(e.data); } catch { return; }
    if (ev.operation) trackOp(ev.operation);
    vmEvent(ev);
    refreshSoon();
  };
  events.addEventListener("vm", onEvent);
  events.addEventListener("operation", onEvent);
  events.addEventListener("lost", () => refreshSoon());
}

start();
