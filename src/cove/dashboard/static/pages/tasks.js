// Tasks and calls: filtered and paginated by the server; one task's attempts, error, traceback and result.
import { api, withQuery } from "../api.js";
import { action, ago, badge, fill, h, notify, table } from "../dom.js";

const PAGE_SIZE = 50;
const STATES = ["", "PENDING", "RUNNING", "COMPLETE", "FAILED", "CANCELLED", "EXPIRED"];
const OPEN = new Set(["PENDING", "RUNNING"]);
const RETRYABLE = new Set(["FAILED", "CANCELLED", "EXPIRED"]);

function cancelButton(task, after) {
  return action("Cancel", async () => {
    const done = await api.post(`/api/v1/tasks/${encodeURIComponent(task.id)}/cancel`);
    notify(`Task ${task.id}: ${done.state}`);
    await after();
  }, { confirm: `Cancel task ${task.id}?`, danger: true, testid: "cancel" });
}

function retryButton(ctx, task) {
  return action("Retry", async () => {
    const done = await api.post(`/api/v1/tasks/${encodeURIComponent(task.id)}/retry`);
    notify(`Task ${task.id} retried as ${done.task_id} (v${done.version})`);
    ctx.go(`#/tasks/${encodeURIComponent(done.task_id)}`);
  }, { confirm: `Run the input of task ${task.id} again, as a new task?`, testid: "retry" });
}

export async function renderList(ctx) {
  const { root, signal, query } = ctx;
  const state = query.get("state") || "";
  const name = query.get("name") || "";
  const page = Math.max(0, Number(query.get("page")) || 0);
  const go = (changes) => {
    const next = { state, name, page: 0, ...changes };
    ctx.go(withQuery("#/tasks", { state: next.state, name: next.name, page: next.page || "" }));
  };
  const deployments = await api.get("/api/v1/deployments", { signal });
  const stateSelect = h("select", { "aria-label": "State", "data-testid": "state-filter" },
    STATES.map((s) => h("option", { value: s, selected: s === state }, s || "Any state")));
  const nameSelect = h("select", { "aria-label": "Deployment", "data-testid": "name-filter" },
    h("option", { value: "" }, "Any deployment"),
    [...new Set([name, ...deployments.map((d) => d.name)].filter(Boolean))].sort()
      .map((n) => h("option", { value: n, selected: n === name }, n)));
  stateSelect.addEventListener("change", () => go({ state: stateSelect.value }));
  nameSelect.addEventListener("change", () => go({ name: nameSelect.value }));
  const body = h("div", {});
  async function refresh() {
    // One more than a page: whether a next page exists, without counting every row.
    const rows = await api.get(withQuery("/api/v1/tasks", {
      state, name, limit: PAGE_SIZE + 1, offset: page * PAGE_SIZE,
    }), { signal });
    const more = rows.length > PAGE_SIZE;
    fill(body,
      table([
        ["Task", (t) => h("a", { href: `#/tasks/${encodeURIComponent(t.id)}` }, t.id)],
        ["Deployment", (t) => t.name], ["State", (t) => badge(t.state)], ["Attempt", (t) => t.attempt],
        ["Created", (t) => ago(t.created_at)],
        ["Error", (t) => (t.error && t.error.message) || ""],
        ["", (t) => (OPEN.has(t.state) ? cancelButton(t, refresh) : "")],
      ], rows.slice(0, PAGE_SIZE), "No tasks match.", { "data-testid": "tasks" }),
      h("div", { class: "pager" },
        page > 0 ? h("a", { href: withQuery("#/tasks", { state, name, page: page - 1 || "" }) }, "← Newer") : null,
        h("span", {}, `Page ${page + 1}`),
        more ? h("a", { href: withQuery("#/tasks", { state, name, page: page + 1 }), "data-testid": "next" },
          "Older →") : null));
  }
  await refresh();
  fill(root, h("h1", {}, "Tasks"), h("div", { class: "toolbar" }, nameSelect, stateSelect), body);
  ctx.every(5000, refresh, ["tasks"]);
}

export async function renderOne(ctx) {
  const { root, signal, params } = ctx;
  const id = params.id;
  async function refresh() {
    const t = await api.get(`/api/v1/tasks/${encodeURIComponent(id)}`, { signal });
    const error = t.error || null;
    fill(root,
      h("p", {}, h("a", { href: withQuery("#/tasks", { name: t.name }) }, `← Tasks of ${t.name}`)),
      h("h1", {}, `Task ${t.id} `, h("span", { "data-testid": "task-state" }, badge(t.state))),
      h("p", { class: "muted" }, `${t.name} · attempt ${t.attempt} · created `, ago(t.created_at),
        t.container_id ? ` · container ${t.container_id}` : ""),
      OPEN.has(t.state) ? h("div", { class: "actions" }, cancelButton(t, refresh)) : null,
      RETRYABLE.has(t.state) ? h("div", { class: "actions" }, retryButton(ctx, t)) : null,
      error ? h("section", { class: "card wide" }, h("h2", {}, "Error"),
        h("p", { class: "error", "data-testid": "task-error" }, `${error.type || "Error"}: ${error.message || ""}`),
        error.traceback ? h("pre", { "data-testid": "traceback" }, error.traceback) : null) : null,
      h("section", { class: "card wide" }, h("h2", {}, "Attempts"), table([
        ["Attempt", (a) => a.attempt ?? ""], ["When", (a) => ago(a.at)], ["Container", (a) => a.container_id || "—"],
        ["Error", (a) => h("div", {}, `${a.type || "Error"}: ${a.message || ""}`,
          a.traceback ? h("details", {}, h("summary", {}, "Traceback"), h("pre", {}, a.traceback)) : null)],
      ], t.attempts || [], "No attempt failed.")),
      t.state === "COMPLETE" ? h("section", { class: "card wide" }, h("h2", {}, "Result"),
        t.result === undefined || t.result === null
          ? h("p", { class: "muted" }, `${t.result_size} bytes (not JSON: read it with the SDK)`)
          : h("pre", { "data-testid": "result" }, JSON.stringify(t.result, null, 2))) : null);
    return t;
  }
  const first = await refresh();
  if (OPEN.has(first.state)) ctx.every(2000, refresh, ["tasks"]);
}
