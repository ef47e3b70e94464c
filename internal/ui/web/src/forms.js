// The "New VM" form: a spec from a few fields, POST /v1/vms?start=true,
// the create operation followed live, then the VM's page. The API names
// the field of what it refuses first ("memory: ...", "disks[0].size:
// ..."); fieldFor maps that path to the input, and the message shows
// next to it. What names no field shows at the top of the form.
import { h, api, show, run, human } from "./lib.js";

// Spec paths (longest first wins) and the input that sets them.
const fields = [
  ["name", "f-name"], ["cpus", "f-cpus"], ["memory", "f-memory"],
  ["boot.image", "f-image"], ["boot.kernel", "f-kernel"], ["boot.initrd", "f-initrd"], ["boot.cmdline", "f-cmdline"],
  ["boot", "f-kernel"], ["disks[0].image", "f-image"], ["disks[0]", "f-disk-size"], ["disks", "f-disk-size"],
  ["nics", "f-network"], ["cloudInit.users", "f-user"], ["cloudInit.sshKeys", "f-ssh-key"], ["cloudInit", "f-user"],
];

// fieldFor returns the input id an error message names, or null.
export function fieldFor(message) {
  const m = /^([A-Za-z][\w.[\]]*): /.exec(message);
  if (!m) return null;
  let best = null;
  for (const [path, id] of fields) {
    const hit = m[1] === path || m[1].startsWith(path + ".") || m[1].startsWith(path + "[");
    if (hit && (!best || path.length > best[0].length)) best = [path, id];
  }
  // cloudInit.users[0].sshKeys is the key's input, not the user's.
  if (best && best[1] === "f-user" && /sshKeys/.test(m[1])) return "f-ssh-key";
  return best ? best[1] : null;
}

function input(id, label, attrs = {}, hint) {
  const el = h(attrs.tag || "input", Object.assign({ id, name: id, "aria-describedby": id + "-error" }, attrs, { tag: null }));
  return h("div", { class: "field", id: id + "-field" },
    h("label", { for: id, text: label }), el,
    hint ? h("span", { class: "muted hint", text: hint }) : null,
    h("p", { class: "error field-error", id: id + "-error", role: "alert" }));
}

function select(id, label, options) {
  const box = input(id, label, { tag: "select" });
  const sel = box.querySelector("select");
  for (const [value, text] of options) sel.append(h("option", { value, text }));
  return box;
}

export async function showCreate() {
  const [images, networks] = await Promise.all([
    api("GET", "/v1/images").then((r) => r.images || [], () => []),
    api("GET", "/v1/networks").then((r) => r.networks || [], () => [])]);
  const top = h("p", { class: "error", id: "create-error", role: "alert" });
  const status = h("div", { id: "create-status", role: "status", class: "status" });
  const imageOpts = [["", images.length ? "— choose an image —" : "no images (godwit image import)"],
    ...images.map((i) => [i.name, `${i.name} (${i.format}, ${human(i.virtualSize)}${i.boot ? ", boots its kernel" : ""})`])];
  const netOpts = [["", "no network"], ...networks.filter((n) => n.active).map((n) => [n.name, `${n.name} (${n.type || n.libvirt}${n.subnet ? " " + n.subnet : ""})`])];
  const mode = (value, text, checked) => h("label", { class: "inline" },
    h("input", { type: "radio", name: "boot-mode", value, id: "f-mode-" + value, checked }), text);
  const form = h("form", { id: "create", class: "create", novalidate: true },
    h("h1", { text: "New virtual machine" }), top,
    input("f-name", "Name", { required: true, autocomplete: "off", placeholder: "web1" }),
    h("fieldset", {}, h("legend", { text: "Boots from" }), mode("image", "an image", images.length > 0), mode("kernel", "a kernel on the host", images.length === 0),
      h("div", { class: "mode-image" }, select("f-image", "Image", imageOpts)),
      h("div", { class: "mode-kernel" },
        input("f-kernel", "Kernel", { placeholder: "/var/lib/godwit/vmlinuz" }, "absolute path on the host"),
        input("f-initrd", "Initrd", { placeholder: "/var/lib/godwit/initrd.gz" }),
        input("f-cmdline", "Kernel command line", { value: "console=ttyS0 quiet" }))),
    h("div", { class: "row" },
      input("f-cpus", "CPUs", { type: "number", min: 1, value: 1, inputmode: "numeric" }),
      input("f-memory", "Memory", { value: "512MiB" }, "with a unit: 512MiB, 2GiB"),
      input("f-disk-size", "Disk size", { placeholder: "10GiB" }, "empty: the image's size, or no disk")),
    select("f-network", "Network", netOpts),
    h("fieldset", {}, h("legend", { text: "cloud-init (optional)" }),
      input("f-user", "User", { autocomplete: "off", placeholder: "admin" }),
      input("f-ssh-key", "SSH public key", { tag: "textarea", rows: 2, placeholder: "ssh-ed25519 AAAA… you@laptop" })),
    h("label", { class: "inline" }, h("input", { type: "checkbox", id: "f-start", checked: true }), "Start it once created"),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit", id: "create-submit" }, "Create"),
      h("a", { href: "#/", class: "button" }, "Cancel")),
    status);
  const sync = () => { form.dataset.mode = form.querySelector("input[name=boot-mode]:checked").value; };
  form.addEventListener("change", sync);
  sync();
  form.addEventListener("submit", (e) => { e.preventDefault(); submit(form, top, status); });
  show(form);
  form.querySelector("#f-name").focus();
}

const val = (form, id) => form.querySelector("#" + id).value.trim();

// specOf reads the form into a VM spec; the daemon checks it.
function specOf(form) {
  const spec = { name: val(form, "f-name"), cpus: Number(val(form, "f-cpus")), memory: val(form, "f-memory") };
  const size = val(form, "f-disk-size");
  if (form.dataset.mode === "image") {
    const name = val(form, "f-image");
    if (name) {
      spec.disks = [{ name: "root", image: name, size: size || undefined }];
      const img = form.querySelector(`#f-image option[value="${CSS.escape(name)}"]`);
      if (img && /boots its kernel/.test(img.textContent)) spec.boot = { image: name };
    } else if (size) spec.disks = [{ name: "root", size }];
  } else {
    spec.boot = { kernel: val(form, "f-kernel") || undefined, initrd: val(form, "f-initrd") || undefined, cmdline: val(form, "f-cmdline") || undefined };
    if (size) spec.disks = [{ name: "root", size }];
  }
  const net = val(form, "f-network");
  if (net) spec.nics = [{ network: net }];
  const user = val(form, "f-user"), key = val(form, "f-ssh-key");
  if (user) spec.cloudInit = { users: [{ name: user, sshKeys: key ? [key] : undefined, sudo: true }] };
  else if (key) spec.cloudInit = { sshKeys: [key] };
  return spec;
}

// showErrors puts each of the API's problems ("a: ...; b: ...") next to
// its field, or at the top.
function showErrors(form, top, message) {
  const general = [];
  for (const part of message.split("; ")) {
    const id = fieldFor(part);
    const box = id && form.querySelector("#" + id + "-error");
    if (!box) { general.push(part); continue; }
    box.textContent = box.textContent ? box.textContent + "; " + part : part;
    form.querySelector("#" + id).setAttribute("aria-invalid", "true");
  }
  top.textContent = general.join("; ");
  const first = form.querySelector("[aria-invalid=true]");
  if (first) first.focus();
}

async function submit(form, top, status) {
  top.textContent = "";
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const button = form.querySelector("#create-submit");
  const spec = specOf(form);
  const start = form.querySelector("#f-start").checked;
  button.disabled = true;
  const out = await run(status, `Create ${spec.name || "VM"}`, () => api("POST", "/v1/vms" + (start ? "?start=true" : ""), spec));
  button.disabled = false;
  if (out.ok) { location.hash = "#/vm/" + encodeURIComponent(spec.name); return; }
  showErrors(form, top, out.error ? out.error.message : "the create failed");
}
