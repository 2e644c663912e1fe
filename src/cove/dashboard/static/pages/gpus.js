// GPUs: per card, which containers hold which share, and the last hour of utilisation and memory in use as charts.
import { api } from "../api.js";
import { lineChart } from "../charts.js";
import { bytes, fill, gauge, h, table } from "../dom.js";

const REFRESH_MS = 10000; // the history's bucket: a new point at most this often
const MIB = 1048576;

function share(holder) {
  if (holder.whole) return "whole card";
  return `${bytes(holder.memory_mib * MIB)}, ${holder.compute} % of the SMs`;
}

function card(gpu, history) {
  const key = `${gpu.worker}-${gpu.index}`;
  const charts = history
    ? h("div", { class: "charts" },
      lineChart({ title: "Utilisation", unit: "%", testid: `gpu-utilization-${key}`, start: history.start,
        step: history.bucket_seconds, series: [{ name: "now", values: history.utilization }] }),
      lineChart({ title: "Memory in use", unit: " MiB", testid: `gpu-memory-${key}`, start: history.start,
        step: history.bucket_seconds, series: [{ name: "now", values: history.memory_used_mib }] }))
    : null;
  return h("section", { class: "card wide", "data-testid": `gpu-${key}` },
    h("h2", {}, `${gpu.worker} · GPU ${gpu.index}: ${gpu.name}`),
    h("p", { class: "muted" }, h("code", {}, gpu.uuid), ` · ${bytes(gpu.memory_mib * MIB)}`),
    gauge(gpu.allocated_memory_mib, gpu.memory_mib,
      `${bytes(gpu.allocated_memory_mib * MIB)} of ${bytes(gpu.memory_mib * MIB)} given to containers`),
    table([
      ["Container", (x) => (x.other_workspace ? "another workspace" : h("code", {}, x.container_id))],
      ["Deployment", (x) => (x.other_workspace ? "—" : h("a", { href: `#/deployments/${encodeURIComponent(x.deployment)}` },
        x.deployment))],
      ["Share", share],
      ["Memory in use", (x) => (x.memory_used_mib === null || x.memory_used_mib === undefined ? "—" : bytes(x.memory_used_mib * MIB))],
      ["State", (x) => x.state],
    ], gpu.holders, "No container holds this card.", { "data-testid": `gpu-holders-${key}` }),
    charts);
}

export async function render(ctx) {
  const { root, signal } = ctx;
  const body = h("div", {});
  async function refresh() {
    const [workers, histories] = await Promise.all([
      api.get("/api/v1/gpus", { signal }),
      api.get("/api/v1/gpus/history", { signal }),
    ]);
    const byUuid = new Map(histories.map((x) => [x.uuid, x]));
    const cards = workers.flatMap((w) => w.gpus.map((g) => ({ worker: w.worker, ...g })));
    fill(body, cards.length ? cards.map((g) => card(g, byUuid.get(g.uuid))) : h("p", { class: "empty" }, "No GPUs."));
  }
  await refresh();
  fill(root, h("h1", {}, "GPUs"), body);
  ctx.every(REFRESH_MS, refresh);
}
