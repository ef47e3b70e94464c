// What every part of the page shares: making elements, calling the API
// with the session's CSRF token, sizes for people, the error toast, and
// operations that views wait on (the event stream reports them to
// opChanged, app.js calls it).

export const $ = (sel, el = document) => el.querySelector(sel);

// session is {name, scope, csrf} while logged in; onLoggedOut is what
// app.js does when the daemon says the session ended.
export const state = { session: null, onLoggedOut: () => {} };

export const admin = () => !!state.session && state.session.scope === "admin";

export function h(tag, attrs = {}, ...kids) {
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

export async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") opts.headers["X-Godwit-CSRF"] = state.session ? state.session.csrf : "";
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const resp = await fetch(path, opts);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!resp.ok) {
    const err = new Error((data && (data.error || data.detail)) || resp.statusText);
    err.status = resp.status;
    err.data = data;
    if (resp.status === 401 && state.session) { state.session = null; state.onLoggedOut("Your session ended: log in again."); }
    throw err;
  }
  return data;
}

const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

// sizeBytes is one of the API's sizes ("23264904KiB") in bytes (NaN if it is none).
export function sizeBytes(size) {
  const m = /^([\d.]+)\s*(B|KiB|MiB|GiB|TiB|PiB)$/.exec(String(size || ""));
  return m ? parseFloat(m[1]) * 1024 ** units.indexOf(m[2]) : NaN;
}

// human turns the API's sizes into what people read.
export function human(size) {
  const n = sizeBytes(size);
  return isNaN(n) ? size || "" : bytes(n);
}

// bytes: a count of bytes for people.
export function bytes(n) {
  let u = 0;
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return (Number.isInteger(n) ? n : n.toFixed(1)) + " " + units[u];
}

export function when(t) {
  if (!t) return "";
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleString();
}

export function toast(msg) {
  const t = $("#toast");
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

// show replaces the main view (nulls are left out).
export function show(...kids) {
  $("#main").replaceChildren(...kids.flat().filter((k) => k != null));
}

export const finished = (op) => op.state === "succeeded" || op.state === "failed" || op.state === "cancelled";

const waiters = new Map(); // operation id -> [function(op)]

// opChanged passes an operation's news to whoever waits on it.
export function opChanged(op) {
  for (const fn of waiters.get(op.id) || []) fn(op);
  if (finished(op)) waiters.delete(op.id);
}

// follow calls onChange with each state of the operation until it ends
// and resolves with its last. The event stream brings the news; a poll
// every 2 s covers a stream that reconnects.
export function follow(op, onChange) {
  return new Promise((resolve) => {
    let done = false;
    const seen = (o) => {
      if (done) return;
      onChange(o);
      if (finished(o)) { done = true; clearInterval(poll); resolve(o); }
    };
    if (!waiters.has(op.id)) waiters.set(op.id, []);
    waiters.get(op.id).push(seen);
    const poll = setInterval(() => api("GET", "/v1/operations/" + encodeURIComponent(op.id)).then(seen, () => {}), 2000);
    seen(op);
  });
}

// progressOf is an operation's progress in words and percent (null when
// it says no total).
export function progressOf(op) {
  const p = op.progress || {};
  const pct = p.total ? Math.round((100 * p.current) / p.total) : finished(op) ? 100 : null;
  return { pct, message: p.message || op.state };
}

// run does an action and shows in status (a role=status element) that it
// runs, its operation's progress, and how it ended: no action without
// feedback. call returns the API's answer (an operation for a slow
// action). It resolves with {ok, op, error}.
export async function run(status, label, call) {
  const bar = h("progress", { "aria-label": label });
  const say = (cls, text, withBar) => {
    status.dataset.state = cls;
    status.replaceChildren(...[h("span", { class: cls === "failed" ? "error" : cls === "succeeded" ? "ok" : "", text }), withBar ? bar : null].filter(Boolean));
  };
  say("running", `${label}…`, true);
  let out;
  try {
    out = await call();
  } catch (err) {
    say("failed", `${label}: ${err.message}`);
    return { ok: false, error: err };
  }
  if (!(out && out.id && out.kind)) { say("succeeded", `${label}: done`); return { ok: true, result: out }; }
  const op = await follow(out, (o) => {
    const { pct, message } = progressOf(o);
    if (pct == null) bar.removeAttribute("value"); else { bar.max = 100; bar.value = pct; }
    if (!finished(o)) say("running", `${label}: ${message}${pct == null ? "" : ` (${pct}%)`}`, true);
  });
  if (op.state === "succeeded") say("succeeded", `${label}: done`);
  else say("failed", `${label}: ${op.error || op.state}`);
  return { ok: op.state === "succeeded", op, error: op.error ? Object.assign(new Error(op.error), { status: op.errorCode }) : null };
}
