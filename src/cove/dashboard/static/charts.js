// Line charts of a deployment's last hour, as inline SVG built node by node (no markup parsing, no library).
import { h } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
const WIDTH = 320;
const HEIGHT = 120;
const PAD = { left: 34, right: 4, top: 8, bottom: 16 };

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  for (const child of children) el.append(typeof child === "string" ? document.createTextNode(child) : child);
  return el;
}

/** A round upper bound for the y axis (1, 2 or 5 times a power of ten). */
function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function formatValue(value, unit) {
  if (value === null || value === undefined) return "—";
  const digits = Number.isInteger(value) || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${Number(value).toFixed(digits)}${unit ? ` ${unit}` : ""}`;
}

/**
 * One chart: `series` is [{name, values, kind}] over buckets of `step` seconds from `start` (null: no value).
 * Shows the newest value of each series beside its name, and the hour's peak as the y axis' top.
 */
export function lineChart({ title, series, start, step, unit = "", testid }) {
  const count = Math.max(...series.map((s) => s.values.length), 1);
  const peak = Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== null)));
  const top = niceMax(peak);
  const x = (i) => PAD.left + (i / Math.max(1, count - 1)) * (WIDTH - PAD.left - PAD.right);
  const y = (v) => HEIGHT - PAD.bottom - (v / top) * (HEIGHT - PAD.top - PAD.bottom);
  const plot = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", role: "img",
    "aria-label": `${title}, the last hour: peak ${formatValue(peak, unit)}` });
  plot.append(
    svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(0), y2: y(0), class: "axis" }),
    svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(top), y2: y(top), class: "grid-line" }),
    svg("text", { x: PAD.left - 4, y: y(top) + 4, class: "tick", "text-anchor": "end" }, formatValue(top, "")),
    svg("text", { x: PAD.left - 4, y: y(0) + 4, class: "tick", "text-anchor": "end" }, "0"),
    svg("text", { x: PAD.left, y: HEIGHT - 4, class: "tick" }, new Date(start * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })),
    svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 4, class: "tick", "text-anchor": "end" },
      new Date((start + (count - 1) * step) * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })),
  );
  series.forEach((s, n) => {
    // A line per run of buckets with values: a gap where there was nothing to measure.
    let run = [];
    const flush = () => {
      if (run.length === 1) plot.append(svg("circle", { cx: run[0][0], cy: run[0][1], r: 1.8, class: `series-${n}` }));
      else if (run.length) plot.append(svg("polyline", { points: run.map((p) => p.join(",")).join(" "), class: `line series-${n}` }));
      run = [];
    };
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) flush();
      else run.push([x(i).toFixed(1), y(v).toFixed(1)]);
    });
    flush();
  });
  const newest = (s) => {
    for (let i = s.values.length - 1; i >= 0; i -= 1) if (s.values[i] !== null) return s.values[i];
    return null;
  };
  return h("figure", { class: "chart-box", "data-testid": testid, "data-peak": peak },
    h("figcaption", {}, h("strong", {}, title), " ",
      series.map((s, n) => h("span", { class: `legend series-${n}` }, `${s.name} ${formatValue(newest(s), unit)}`))),
    plot);
}

/** The four charts of a deployment's history (``GET /api/v1/deployments/{name}/history``). */
export function historyCharts(history) {
  const common = { start: history.start, step: history.bucket_seconds };
  return h("div", { class: "charts" },
    lineChart({ ...common, title: "Requests", unit: "/s", testid: "chart-requests",
      series: [{ name: "last 10 s", values: history.requests_per_second }] }),
    lineChart({ ...common, title: "Latency", unit: "ms", testid: "chart-latency",
      series: [{ name: "p50", values: history.p50_ms }, { name: "p99", values: history.p99_ms }] }),
    lineChart({ ...common, title: "Errors (5xx)", unit: "", testid: "chart-errors",
      series: [{ name: "last 10 s", values: history.errors }] }),
    lineChart({ ...common, title: "Cold starts", unit: "", testid: "chart-cold-starts",
      series: [{ name: "last 10 s", values: history.cold_starts }] }));
}
