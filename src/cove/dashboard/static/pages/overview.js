// Overview: what runs, what waits and why, what capacity is left, what failed lately. Refreshed when one of them
// changes (the change stream), every 5 s while no stream is open.
import { api, withQuery } from "../api.js";
import { ago, badge, bytes, fill, gauge, h, table } from "../dom.js";

const STARTING = new Set(["pending", "starting", "listening"]);
const REFRESH_MS = 5000;

function isFailure(event) {
  if (event.kind === "retry") return true;
  if (event.kind !== "exited") return false;
  const i = event.inputs || {};
  return Boolean(i.failed || i.oom || i.timeout || (i.exit_code && i.exit_code !== 0));
}

function deploymentsByKind(rows) {
  const counts = new Map();
  for (const d of rows) {
    const key = `${d.kind}\u0000${d.state}`;
    counts.set(key, (counts.get(key) || 0) + 1);
  }
  const lines = [...counts].map(([key, n]) => { const [kind, state] = key.split("\u0000"); return { kind, state, n }; });
  lines.sort((a, b) => a.kind.localeCompare(b.kind) || a.state.localeCompare(b.state));
  return table([["Kind", (r) => r.kind], ["State", (r) => badge(r.state)], ["Versions", (r) => r.n]], lines,
    "No deployments yet: cove deploy app.py", { "data-testid": "overview-deployments" });
}

function containerSummary(rows) {
  const running = rows.filter((c) => c.id && c.state === "ready");
  const starting = rows.filter((c) => c.id && STARTING.has(c.state));
  const backlog = rows.filter((c) => !c.id);
  return h("div", {},
    h("div", { class: "stats" },
      stat("Running", running.length, "containers-running"),
      stat("Starting", starting.length, "containers-starting"),
      stat("Backlog", backlog.length, "containers-backlog")),
    backlog.length ? table([
      ["Deployment", (c) => link(c.deployment)], ["Version", (c) => `v${c.version}`], ["Why it waits", (c) => c.reason],
    ], backlog) : null);
}

function stat(label, value, testid) {
  return h("div", { class: "stat" }, h("strong", { "data-testid": testid }, value), h("span", {}, label));
}

function link(name) {
  return name ? h("a", { href: `#/deployments/${encodeURIComponent(name)}` }, name) : "—";
}

export function workerTable(workers) {
  return table([
    ["Worker", (w) => w.name],
    ["State", (w) => badge(w.alive ? w.state : "lost")],
    ["Runtime", (w) => w.runtime],
    ["CPU free", (w) => gauge(w.cpu_millis - w.free_cpu_millis, w.cpu_millis,
      `${(w.free_cpu_millis / 1000).toFixed(1)} of ${(w.cpu_millis / 1000).toFixed(1)} cores free`)],
    ["Memory free", (w) => gauge(w.memory_mib - w.free_memory_mib, w.memory_mib,
      `${bytes(w.free_memory_mib * 1048576)} of ${bytes(w.memory_mib * 1048576)} free`)],
    ["Containers", (w) => w.containers],
  ], workers, "No worker has joined.");
}

function gpuTable(gpuWorkers) {
  const cards = gpuWorkers.flatMap((w) => w.gpus.map((g) => ({ worker: w.worker, ...g })));
  return table([
    ["Worker", (g) => g.worker],
    ["GPU", (g) => `${g.index}: ${g.name}`],
    ["Allocated memory", (g) => gauge(g.allocated_memory_mib, g.memory_mib,
      `${bytes(g.allocated_memory_mib * 1048576)} of ${bytes(g.memory_mib * 1048576)}`)],
    ["Compute", (g) => (g.held_whole ? "whole card" : `${g.allocated_compute} %`)],
    ["Held by", (g) => g.holders.map((x) => (x.other_workspace ? "another workspace" : x.deployment)).join(", ") || "—"],
  ], cards, "No GPUs.");
}

function queueTable(deployments, pending) {
  const depth = new Map();
  for (const t of pending) depth.set(t.name, (depth.get(t.name) || 0) + 1);
  const queues = deployments.filter((d) => (d.kind === "task_queue" || d.kind === "function") && d.live);
  return table([
    ["Queue", (d) => link(d.name)], ["Kind", (d) => d.kind],
    ["Waiting", (d) => h("a", { href: `#/tasks?name=${encodeURIComponent(d.name)}&state=PENDING` },
      String(depth.get(d.name) || 0))],
  ], queues, "No task queues or functions.");
}

function failures(events, failedTasks) {
  const rows = [
    ...events.filter(isFailure).map((e) => ({ ts: e.ts, what: e.deployment, why: e.reason, kind: e.kind })),
    ...failedTasks.map((t) => ({
      ts: t.finished_at || t.created_at, what: t.name, kind: "task",
      why: h("a", { href: `#/tasks/${encodeURIComponent(t.id)}` }, (t.error && t.error.message) || "failed"),
    })),
  ].sort((a, b) => b.ts - a.ts).slice(0, 15);
  return table([["When", (r) => ago(r.ts)], ["What", (r) => link(r.what)], ["Kind", (r) => r.kind],
    ["Why", (r) => r.why]], rows, "No failures lately.", { "data-testid": "failures" });
}

async function optional(promise) {
  try {
    return await promise;
  } catch (err) {
    if (err.status === 403) return null;  // a member's token: workers are the operator's
    throw err;
  }
}

export async function render(ctx) {
  const { root, signal } = ctx;
  const sections = {
    deployments: h("section", { class: "card" }), containers: h("section", { class: "card" }),
    queues: h("section", { class: "card" }), failures: h("section", { class: "card wide" }),
    workers: h("section", { class: "card wide" }), gpus: h("section", { class: "card wide" }),
  };
  async function refresh() {
    const [deployments, containers, workers, gpus, pending, failed, events] = await Promise.all([
      api.get("/api/v1/deployments", { signal }),
      api.get("/api/v1/containers", { signal }),
      ctx.session.role === "admin" ? optional(api.get("/api/v1/workers", { signal })) : null,  // the operator's
      api.get("/api/v1/gpus", { signal }),
      api.get(withQuery("/api/v1/tasks", { state: "PENDING", limit: 1000 }), { signal }),
      api.get(withQuery("/api/v1/tasks", { state: "FAILED", limit: 10 }), { signal }),
      api.get(withQuery("/api/v1/events", { limit: 200 }), { signal }),
    ]);
    fill(sections.deployments, h("h2", {}, "Deployments"), deploymentsByKind(deployments));
    fill(sections.containers, h("h2", {}, "Containers"), containerSummary(containers));
    fill(sections.queues, h("h2", {}, "Task queues"), queueTable(deployments, pending));
    fill(sections.failures, h("h2", {}, "Recent failures"), failures(events.events, failed));
    fill(sections.workers, h("h2", {}, "Workers"),
      workers ? workerTable(workers) : h("p", { class: "empty" }, "Workers are shown to admins."));
    fill(sections.gpus, h("h2", {}, "GPUs"), gpuTable(gpus));
  }
  await refresh();
  fill(root, h("h1", {}, "Overview"), h("div", { class: "grid" }, Object.values(sections)));
  ctx.every(REFRESH_MS, refresh, ["deployments", "containers", "events", "tasks"]);
}
