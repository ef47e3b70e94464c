// The graphical console: noVNC over the daemon's websocket
// (/v1/vms/NAME/vnc/ws), which carries the VM's VNC display (spec
// graphics: vnc). Built on its own (build.sh) and loaded only when a user
// opens a graphical console: noVNC is most of its size, and its module
// waits at top level (a probe for H.264 decoding), which the page's
// script bundle cannot.
import RFB from "@novnc/novnc";

// openVNC shows vm's display in screen (an element) and returns the
// session: {rfb, close, ctrlAltDel, typeText}. onStatus hears "connecting",
// "connected", "disconnected" and the reason; canType false makes the
// viewer view-only (the daemon drops a read-scope viewer's input anyway).
export function openVNC(screen, vm, { canType, onStatus }) {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/vms/" + encodeURIComponent(vm) + "/vnc/ws";
  onStatus("connecting");
  const rfb = new RFB(screen, url, { shared: true, wsProtocols: ["binary"] });
  rfb.viewOnly = !canType;
  rfb.scaleViewport = true; // the whole screen fits the panel, and full screen
  rfb.focusOnClick = true;
  rfb.addEventListener("connect", () => onStatus("connected"));
  rfb.addEventListener("disconnect", (e) => onStatus("disconnected", e.detail && e.detail.clean ? "" : "the connection was lost"));
  rfb.addEventListener("securityfailure", (e) => onStatus("disconnected", e.detail.reason || "the display refused the viewer"));
  return {
    rfb,
    close: () => rfb.disconnect(),
    ctrlAltDel: () => rfb.sendCtrlAltDel(),
    // typeText types text as key presses: a guest without a clipboard
    // agent gets a paste all the same. X keysyms are Latin-1 code points,
    // and 0x1000000 plus the code point beyond.
    typeText: (text) => {
      for (const ch of text.replace(/\r\n?/g, "\n")) {
        const cp = ch.codePointAt(0);
        const keysym = ch === "\n" ? 0xff0d : ch === "\t" ? 0xff09 : cp < 0x100 ? cp : 0x1000000 + cp;
        rfb.sendKey(keysym, null);
      }
    },
  };
}
