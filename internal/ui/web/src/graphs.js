// Usage graphs (uPlot) from the daemon's history of each VM: a point per
// step, hours of them (GET /v1/vms/NAME/history), and sparklines for the
// overview (GET /v1/history?last=N), drawn as small SVG lines.
import uPlot from "uplot";

const bytes = (n) => {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  n = Math.abs(n);
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return (n >= 100 || (u === 0 && n >= 10) || n === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[u];
};
const rate = (n) => bytes(n) + "/s";
const percent = (n) => (100 * n).toFixed(n < 0.1 ? 1 : 0) + " %";

// The graphs of a VM page: title, the history's columns, how to show a value.
const charts = [
  { id: "cpu", title: "CPU", series: [["cpu", "CPU", "#1f6feb"]], fmt: percent },
  { id: "memory", title: "Memory (QEMU resident)", series: [["memoryRss", "resident", "#8250df"]], fmt: bytes },
  { id: "disk", title: "Disk", series: [["diskRead", "read", "#1a7f37"], ["diskWrite", "write", "#cf222e"]], fmt: rate },
  { id: "net", title: "Network", series: [["netRx", "received", "#1a7f37"], ["netTx", "sent", "#9a6700"]], fmt: rate },
];

// showGraphs fills box with the VM's graphs and keeps them current; it
// returns a function that stops that.
export function showGraphs(box, vm, { h, api }) {
  const note = h("p", { class: "muted", id: "usage-note", text: "Loading the usage history…" });
  const grid = h("div", { class: "graphs" });
  box.replaceChildren(note, grid);
  const plots = new Map();
  const observers = [];
  let timer = null, stopped = false;
  const draw = (hist) => {
    const n = (hist.time || []).length;
    note.textContent = n < 2
      ? `Usage history: ${n} point${n === 1 ? "" : "s"} yet (one every ${hist.stepSeconds} s while the VM runs).`
      : `The last ${duration(n * hist.stepSeconds)}, a point every ${hist.stepSeconds} s.`;
    for (const c of charts) {
      const data = [hist.time || [], ...c.series.map(([k]) => hist[k] || [])];
      let p = plots.get(c.id);
      if (p) { p.setData(data); continue; }
      const el = h("figure", { class: "graph", id: "graph-" + c.id }, h("figcaption", { text: c.title }));
      grid.append(el);
      p = new uPlot({
        width: plotWidth(el), height: 160,
        series: [{}, ...c.series.map(([, label, stroke]) => ({ label, stroke, width: 1.5, fill: stroke + "22", value: (u, v) => v == null ? "–" : c.fmt(v) }))],
        axes: [{}, { values: (u, ticks) => ticks.map(c.fmt), size: 70 }],
        scales: { y: { range: (u, min, max) => [0, Math.max(max, c.id === "cpu" ? 0.01 : 1)] } },
        legend: { live: true },
      }, data, el);
      el.plot = p; // for the tests
      plots.set(c.id, p);
      // The plot's width follows its box (a window resize, a phone's
      // width): uPlot draws at a fixed size of pixels.
      const fit = new ResizeObserver(() => {
        const w = plotWidth(el);
        if (w !== p.width) p.setSize({ width: w, height: 160 });
      });
      fit.observe(el);
      observers.push(fit);
    }
  };
  const load = async () => {
    try {
      const hist = await api("GET", "/v1/vms/" + encodeURIComponent(vm) + "/history");
      if (stopped) return;
      draw(hist);
      timer = setTimeout(load, Math.max(2, hist.stepSeconds) * 1000);
    } catch (err) {
      if (stopped) return;
      note.textContent = "The usage history is not available: " + err.message;
      timer = setTimeout(load, 30000);
    }
  };
  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
    for (const o of observers) o.disconnect();
    for (const p of plots.values()) p.destroy();
  };
}

// plotWidth is the width inside a graph's figure (its padding off).
function plotWidth(el) {
  const cs = getComputedStyle(el);
  const inner = el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  return Math.max(120, Math.floor(inner || 240));
}

function duration(s) {
  if (s < 120) return `${Math.round(s)} seconds`;
  if (s < 7200) return `${Math.round(s / 60)} minutes`;
  return `${(s / 3600).toFixed(1)} hours`;
}

const svgNS = "http://www.w3.org/2000/svg";

// sparkline draws values as a small SVG line; label says what it is.
export function sparkline(values, label, fmt) {
  const w = 80, hgt = 22;
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${hgt}`);
  svg.setAttribute("width", w);
  svg.setAttribute("height", hgt);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  const last = values.length ? values[values.length - 1] : null;
  svg.setAttribute("aria-label", label + (last == null ? ": no data yet" : ": now " + fmt(last)));
  const title = document.createElementNS(svgNS, "title");
  title.textContent = svg.getAttribute("aria-label");
  svg.append(title);
  if (values.length >= 2) {
    const max = Math.max(...values, 1e-9);
    const pts = values.map((v, i) => `${(i * w / (values.length - 1)).toFixed(1)},${(hgt - 1 - (v / max) * (hgt - 2)).toFixed(1)}`);
    const line = document.createElementNS(svgNS, "polyline");
    line.setAttribute("points", pts.join(" "));
    svg.append(line);
  }
  svg.dataset.points = String(values.length);
  return svg;
}

export const formats = { bytes, rate, percent };
