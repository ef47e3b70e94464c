// The VM page's graphical console panel (spec graphics: vnc): a button
// opens it; the viewer itself (vnc.js, with noVNC) is loaded then, not
// with the page. Full screen, Ctrl-Alt-Del and typing the clipboard in
// for an admin; a read-scope login watches (view only).
export function graphicalPanel(vm, { h, toast, canType }) {
  const status = h("span", { class: "muted", id: "vnc-status", role: "status", text: "closed" });
  const screen = h("div", { class: "vnc-screen", id: "vnc-screen", hidden: true });
  const box = h("section", { id: "vnc", class: "console", "aria-label": "Graphical console" });
  let session = null;
  const setStatus = (state, reason) => {
    box.dataset.state = state;
    status.textContent = state === "connected" && !canType ? "connected, view only" : state + (reason ? ": " + reason : "");
    open.hidden = state !== "disconnected" && state !== "closed";
    for (const b of [full, cad, paste]) if (b) b.disabled = state !== "connected";
  };
  const connect = async () => {
    let mod;
    try { mod = await import("./vnc.js"); } catch (err) { toast("The graphical console could not load: " + err.message); return; }
    if (session) session.close();
    screen.hidden = false;
    session = mod.openVNC(screen, vm, { canType, onStatus: setStatus });
    box.rfb = session.rfb; // for the tests and the browser's console
  };
  const fullScreen = () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else box.requestFullscreen().catch((err) => toast("Full screen: " + err.message));
  };
  const typeClipboard = async () => {
    try { session.typeText(await navigator.clipboard.readText()); session.rfb.focus(); }
    catch (err) { toast("The browser did not let the page read the clipboard: " + err.message); }
  };
  const open = h("button", { type: "button", id: "vnc-open", class: "primary", onclick: connect }, "Open graphical console");
  const full = h("button", { type: "button", id: "vnc-full", "aria-label": "Graphical console full screen", onclick: fullScreen }, "Full screen");
  const cad = canType ? h("button", { type: "button", id: "vnc-cad", "aria-label": "Send Ctrl-Alt-Del to the VM", onclick: () => session.ctrlAltDel() }, "Ctrl-Alt-Del") : null;
  const paste = canType ? h("button", { type: "button", id: "vnc-paste", "aria-label": "Type the clipboard into the VM", onclick: typeClipboard }, "Type clipboard") : null;
  box.append(h("div", { class: "console-bar" }, open, full, cad, paste, status), screen);
  setStatus("closed");
  return { box, close: () => session && session.close() };
}
