// Workers: capacity and use, labels, runtime; cordon, drain and uncordon (admin tokens only, as in the API).
import { api } from "../api.js";
import { action, ago, badge, bytes, fill, gauge, h, notify, table } from "../dom.js";

function stateAction(worker, verb, refresh) {
  return action(verb[0].toUpperCase() + verb.slice(1), async () => {
    const done = await api.post(`/api/v1/workers/${encodeURIComponent(worker.id)}/${verb}`);
    notify(`${worker.name} is ${done.state}`);
    await refresh();
  }, { confirm: verb === "drain" ? `Drain ${worker.name}? Its containers move elsewhere.` : null,
    danger: verb === "drain", testid: `${verb}-${worker.name}` });
}

export async function render(ctx) {
  const { root, signal } = ctx;
  const body = h("div", {});
  async function refresh() {
    const workers = await api.get("/api/v1/workers", { signal });
    fill(body, table([
      ["Worker", (w) => w.name], ["State", (w) => h("span", { "data-testid": `state-${w.name}` },
        badge(w.alive ? w.state : "lost"))],
      ["Runtime", (w) => w.runtime],
      ["Labels", (w) => Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "—"],
      ["CPU", (w) => gauge(w.cpu_millis - w.free_cpu_millis, w.cpu_millis,
        `${((w.cpu_millis - w.free_cpu_millis) / 1000).toFixed(1)} of ${(w.cpu_millis / 1000).toFixed(1)} cores used`)],
      ["Memory", (w) => gauge(w.memory_mib - w.free_memory_mib, w.memory_mib,
        `${bytes((w.memory_mib - w.free_memory_mib) * 1048576)} of ${bytes(w.memory_mib * 1048576)} used`)],
      ["Containers", (w) => w.containers], ["Heartbeat", (w) => ago(w.last_heartbeat)],
      ["", (w) => h("span", { class: "inline" },
        w.state === "active" ? [stateAction(w, "cordon", refresh), stateAction(w, "drain", refresh)]
          : stateAction(w, "uncordon", refresh))],
    ], workers, "No worker has joined.", { "data-testid": "workers" }));
  }
  await refresh();
  fill(root, h("h1", {}, "Workers"), body);
  ctx.every(5000, refresh);
}
