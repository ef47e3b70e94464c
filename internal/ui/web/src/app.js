// godwit's web page: one script, no framework. It talks to the REST API
// with the session cookie, sends the session's CSRF token on every change,
// and follows /v1/events to keep what it shows current.
import { openConsole } from "./console.js";
import { showGraphs, sparkline, formats } from "./graphs.js";
import { graphicalPanel } from "./graphical.js";

const $ = (sel, el = document) => el.querySelector(sel);
let session = null;   // {name, scope, csrf}
let events = null;    // the EventSource
const ops = new Map(); // operation id -> its <li>

function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v == null) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid != null) el.append(kid.nodeType ? kid : document.createTextNode(String(kid)));
  return el;
}

async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") opts.headers["X-Godwit-CSRF"] = session ? session.csrf : "";
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const resp = await fetch(path, opts);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!resp.ok) {
    const err = new Error((data && (data.error || data.detail)) || resp.statusText);
    err.status = resp.status;
    err.data = data;
    if (resp.status === 401 && session) { session = null; showLogin("Your session ended: log in again."); }
    throw err;
  }
  return data;
}

// human turns the API's sizes ("23264904KiB") into what people read.
function human(size) {
  const m = /^([\d.]+)\s*(B|KiB|MiB|GiB|TiB)$/.exec(String(size || ""));
  if (!m) return size || "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let n = parseFloat(m[1]) * 1024 ** units.indexOf(m[2]);
  let u = 0;
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return (Number.isInteger(n) ? n : n.toFixed(1)) + " " + units[u];
}

// show replaces the main view (nulls are left out).
function show(...kids) {
  $("#main").replaceChildren(...kids.flat().filter((k) => k != null));
}

function toast(msg) {
  const t = $("#toast");
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

const admin = () => session && session.scope === "admin";

// ---- login ----

async function start() {
  try {
    session = await api("GET", "/ui/api/session");
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
    session = await api("POST", "/ui/api/login", { token });
  } catch (err) {
    $("#login-error").textContent = err.message;
    return;
  }
  loggedIn();
}

function loggedIn() {
  $("#who").textContent = session.name + (admin() ? "" : " (read only)");
  $("#logout").hidden = false;
  follow();
  route();
}

$("#activity-close").addEventListener("click", () => { $("#activity").hidden = true; });

$("#logout").addEventListener("click", async () => {
  try { await api("POST", "/ui/api/logout"); } catch { /* logged out anyway */ }
  session = null;
  showLogin("Logged out.");
});

// ---- views ----

window.addEventListener("hashchange", () => session && route());

// The VM page's console and graphs stay (connected, current) while the
// page re-renders on events; they close when it shows something else.
let vmParts = null; // {vm, console: {box, term: {close, refresh}}, graphs: {box, close}}
function closeVMParts() {
  if (!vmParts) return;
  if (vmParts.console) vmParts.console.term.close();
  if (vmParts.graphs) vmParts.graphs.close();
  if (vmParts.vnc) vmParts.vnc.close();
  vmParts = null;
}
function route() {
  const m = location.hash.match(/^#\/vm\/(.+)$/);
  const vm = m ? decodeURIComponent(m[1]) : null;
  if (vmParts && vmParts.vm !== vm) closeVMParts();
  if (m) return showVM(vm);
  return showOverview();
}

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => session && route(), 250);
}

function card(title, value, note) {
  return h("div", { class: "card" }, h("div", { class: "muted", text: title }), h("div", { class: "big", text: value }), note ? h("div", { class: "muted", text: note }) : null);
}

async function showOverview() {
  let host, vms, usage;
  try {
    let list;
    [host, list, usage] = await Promise.all([api("GET", "/v1/host"), api("GET", "/v1/vms"),
      api("GET", "/v1/history?last=60").catch(() => ({ vms: [] }))]);
    vms = list.vms || [];
  } catch (err) { if (session) toast(err.message); return; }
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
    h("thead", {}, h("tr", {}, h("th", { text: "Name" }), h("th", { text: "State" }), h("th", { class: "wide", text: "CPUs" }),
      h("th", { class: "wide", text: "Memory" }), h("th", { text: "CPU use" }), h("th", { class: "wide", text: "Memory use" }), h("th", { class: "wide", text: "Host" }), admin() ? h("th", { text: "Actions" }) : null)),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 8, class: "muted", text: "No VMs yet: godwit vm create -f SPEC.yaml" }))));
  show(h("h1", { text: "Overview" }), cards,
    warnings.length ? h("div", {}, h("h2", { text: "Problems" }), h("ul", { id: "warnings" }, warnings)) : null,
    h("h2", { text: "Virtual machines" }), table);
}

function vmRow(v, u) {
  const spec = v.spec || {};
  return h("tr", { id: "vm-" + v.name, "data-state": v.state },
    h("td", {}, h("a", { href: "#/vm/" + encodeURIComponent(v.name), text: v.name }), v.managed ? null : h("span", { class: "muted", text: " (unmanaged)" })),
    h("td", {}, h("span", { class: "state " + v.state, text: v.state })),
    h("td", { class: "wide", text: spec.cpus || "" }),
    h("td", { class: "wide", text: human(spec.memory) }),
    h("td", { class: "use" }, sparkline(u ? u.cpu : [], `CPU of ${v.name}`, formats.percent)),
    h("td", { class: "use wide" }, sparkline(u ? u.memoryRss : [], `Memory of ${v.name}`, formats.bytes)),
    h("td", { class: "wide", text: v.host || "" }),
    admin() && v.managed ? h("td", {}, actions(v)) : admin() ? h("td") : null);
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
  let v, snaps = [];
  try {
    v = await api("GET", "/v1/vms/" + encodeURIComponent(name));
    if (v.managed) snaps = (await api("GET", "/v1/vms/" + encodeURIComponent(name) + "/snapshots").catch(() => ({}))).snapshots || [];
  } catch (err) { if (session) toast(err.message); return; }
  const spec = v.spec || {};
  const disks = (v.disks || []).map((d) => h("tr", {}, h("td", { text: d.name }), h("td", { text: d.target }), h("td", { text: human(d.size) }), h("td", { class: "wide", text: d.path })));
  const nics = (v.nics || []).map((n) => h("tr", {}, h("td", { text: n.network || n.bridge || "" }), h("td", { text: n.mac || "" }), h("td", { text: (n.addresses || []).join(", ") })));
  if (!vmParts) vmParts = { vm: name };
  const fresh = !vmParts.graphs;
  const part = (key, make) => vmParts[key] ? vmParts[key].box : make();
  const consoleBox = part("console", () => h("section", { id: "console", class: "console", "aria-label": "Serial console" }));
  const graphsBox = part("graphs", () => h("section", { id: "usage", "aria-label": "Usage graphs" }));
  if (spec.graphics === "vnc" && !vmParts.vnc) vmParts.vnc = graphicalPanel(name, { h, toast, canType: admin() });
  show(
    h("p", {}, h("a", { href: "#/", text: "← Overview" })),
    h("h1", {}, `${v.name} `, h("span", { class: "state " + v.state, id: "vm-state", text: v.state })),
    v.reason ? h("p", { class: "muted", text: v.reason }) : null,
    admin() && v.managed ? h("div", { class: "toolbar" }, actions(v)) : null,
    h("div", { class: "cards" }, card("CPUs", String(spec.cpus || "?")), card("Memory", human(spec.memory) || "?"), card("Host", v.host || $("#hostname").textContent)),
    h("h2", { text: "Disks" }), h("table", {}, h("tbody", {}, disks.length ? disks : h("tr", {}, h("td", { class: "muted", text: "none" })))),
    h("h2", { text: "Network interfaces" }), h("table", {}, h("tbody", {}, nics.length ? nics : h("tr", {}, h("td", { class: "muted", text: "none" })))),
    h("h2", { text: "Snapshots" }), h("ul", { id: "snapshots" }, snaps.length ? snaps.map((s) => h("li", { text: `${s.name}${s.parent ? " (after " + s.parent + ")" : ""}` })) : h("li", { class: "muted", text: "none" })),
    h("h2", { text: "Usage" }), graphsBox,
    vmParts.vnc ? [h("h2", { text: "Graphical console" }), vmParts.vnc.box] : null,
    h("h2", { text: "Serial console" }), v.managed ? consoleBox : h("p", { class: "muted", text: "godwit keeps no console for a VM it did not create." }));
  if (fresh) vmParts.graphs = { box: graphsBox, close: showGraphs(graphsBox, name, { h, api }) };
  if (v.managed && !vmParts.console) vmParts.console = { box: consoleBox, term: openConsole(consoleBox, name, { h, toast, canType: admin() }) };
  else if (vmParts.console) vmParts.console.term.refresh();
}

// ---- operations and events ----

function trackOp(op) {
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
    op.error ? h("div", { class: "error", text: op.error }) : null].filter((k) => k != null));
}

function follow() {
  if (events) events.close();
  events = new EventSource("/v1/events");
  const onEvent = (e) => {
    let ev;
    try { ev = JSON.parse(e.data); } catch { return; }
    if (ev.operation) trackOp(ev.operation);
    refreshSoon();
  };
  events.addEventListener("vm", onEvent);
  events.addEventListener("operation", onEvent);
  events.addEventListener("lost", () => refreshSoon());
}

start();
