// The serial console: xterm.js over the daemon's websocket. Output comes
// as binary messages, typing goes back as binary messages (the daemon
// refuses a read-scope viewer's, and says so first with {"readOnly": true}).
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";

// The page's CSP allows style elements only with its nonce; xterm makes
// its own (sizes, colours), so they get the nonce as they are made.
const styleNonce = (document.querySelector("link[rel=stylesheet]") || {}).nonce || "";
const createElement = Document.prototype.createElement;
Document.prototype.createElement = function (tag, opts) {
  const el = createElement.call(this, tag, opts);
  if (styleNonce && String(tag).toLowerCase() === "style") el.nonce = styleNonce;
  return el;
};

const encoder = new TextEncoder();

// openConsole fills box (an element) with a terminal on vm's console and
// returns {close, refresh}. h makes elements, toast shows errors.
export function openConsole(box, vm, { h, toast, canType }) {
  const term = new Terminal({ convertEol: true, scrollback: 5000, disableStdin: !canType, fontSize: 13,
    screenReaderMode: false, theme: { background: "#11151a" } });
  const fit = new FitAddon();
  term.loadAddon(fit);
  const status = h("span", { class: "muted", id: "console-status", role: "status", text: "connecting…" });
  const screen = h("div", { class: "console-screen", id: "console-screen" });
  let ws = null, closed = false, readOnly = !canType;
  const send = (text) => {
    if (readOnly) { toast("This login is read only: it cannot type into the console."); return; }
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(text));
  };
  const paste = async () => {
    try { send(await navigator.clipboard.readText()); term.focus(); }
    catch (err) { toast("The browser did not let the page read the clipboard (" + err.message + "): paste with Ctrl+Shift+V in the console."); }
  };
  const full = () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else box.requestFullscreen().then(() => fit.fit()).catch((err) => toast("Full screen: " + err.message));
  };
  const reconnect = h("button", { type: "button", id: "console-reconnect", hidden: true, onclick: () => connect() }, "Reconnect");
  box.replaceChildren(
    h("div", { class: "console-bar" },
      h("button", { type: "button", id: "console-full", "aria-label": "Console full screen", onclick: full }, "Full screen"),
      canType ? h("button", { type: "button", id: "console-paste", "aria-label": "Paste the clipboard into the console", onclick: paste }, "Paste") : null,
      reconnect, status, h("span", { class: "muted hint", id: "console-keys", text: "Tab goes to the guest; Shift+Tab leaves the console" })),
    screen);
  term.open(screen);
  fit.fit();
  const onResize = () => fit.fit();
  window.addEventListener("resize", onResize);
  document.addEventListener("fullscreenchange", onResize);
  term.onData(send);
  // Tab belongs to the guest (shells complete with it); Shift+Tab leaves
  // the console for the page's controls, so a keyboard user is never
  // trapped in it (the browser moves the focus when xterm lets it go).
  term.attachCustomKeyEventHandler((e) => !(e.key === "Tab" && e.shiftKey));
  // Exposed for the tests and for debugging from the browser's console.
  box.terminal = term;

  function connect() {
    reconnect.hidden = true;
    status.textContent = "connecting…";
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/vms/" + encodeURIComponent(vm) + "/console/ws?lines=1000";
    ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { status.textContent = readOnly ? "connected, read only" : "connected"; term.reset(); };
    ws.onmessage = (e) => {
      if (typeof e.data !== "string") { term.write(new Uint8Array(e.data)); return; }
      let note = {};
      try { note = JSON.parse(e.data); } catch { return; }
      if (note.readOnly) { readOnly = true; term.options.disableStdin = true; status.textContent = "connected, read only"; box.dataset.readOnly = "true"; }
      if (note.error) toast(note.error);
    };
    ws.onclose = (e) => {
      if (closed) return;
      status.textContent = "disconnected" + (e.reason ? ": " + e.reason : "");
      reconnect.hidden = false;
    };
  }
  connect();
  const close = () => {
    closed = true;
    window.removeEventListener("resize", onResize);
    document.removeEventListener("fullscreenchange", onResize);
    if (ws) ws.close();
    term.dispose();
  };
  // refresh redraws after the page moved the terminal into its new view.
  const refresh = () => { fit.fit(); term.refresh(0, term.rows - 1); };
  return { close, refresh };
}
