// Tokens (a new token's secret is shown once), the audit log, and workspaces with their quotas (admins).
import { api, withQuery } from "../api.js";
import { action, ago, badge, bytes, fill, h, notify, table } from "../dom.js";

export async function tokens(ctx) {
  const { root, signal, session } = ctx;
  const body = h("div", {});
  const created = h("div", {});
  async function refresh() {
    const rows = await api.get("/api/v1/tokens", { signal });
    fill(body, table([
      ["Name", (t) => t.name], ["Id", (t) => h("code", {}, t.id)], ["Role", (t) => t.role],
      ["Created", (t) => ago(t.created_at)], ["State", (t) => badge(t.revoked_at ? "revoked" : "active")],
      ["", (t) => (t.revoked_at || t.id === session.token_id ? "" : action("Revoke", async () => {
        await api.del(`/api/v1/tokens/${encodeURIComponent(t.id)}`);
        notify(`Revoked ${t.name}`);
        await refresh();
      }, { confirm: `Revoke token ${t.name}? Whatever uses it stops working.`, danger: true }))],
    ], rows, "No tokens."));
  }
  const name = h("input", { placeholder: "name", "aria-label": "Token name", required: true, maxlength: 100 });
  const role = h("select", { "aria-label": "Role" }, (session.role === "admin" ? ["user", "admin", "metrics"] : ["user"])
    .map((r) => h("option", { value: r }, r)));
  const form = h("form", { class: "toolbar" }, name, role, h("button", { type: "submit" }, "Create token"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await api.post("/api/v1/tokens", { name: name.value, role: role.value });
      fill(created, h("div", { class: "card secret" }, h("p", {}, `Token ${made.name} (${made.role}) — copy it now: `,
        "it is not shown again."), h("pre", { "data-testid": "new-token" }, made.token)));
      name.value = "";
      await refresh();
    } catch (err) {
      notify(err.message, true);
    }
  });
  await refresh();
  fill(root, h("h1", {}, "Tokens"), form, created, body);
}

export async function audit(ctx) {
  const { root, signal } = ctx;
  const body = h("div", {});
  async function refresh() {
    const rows = await api.get(withQuery("/api/v1/audit", { limit: 200 }), { signal });
    fill(body, table([
      ["When", (a) => ago(a.ts)], ["Action", (a) => h("code", {}, a.action)], ["Target", (a) => a.target],
      ["Token", (a) => a.token_id || "server"],
      ["Details", (a) => (Object.keys(a.details || {}).length ? JSON.stringify(a.details) : "")],
    ], rows, "Nothing recorded yet.", { "data-testid": "audit" }));
  }
  await refresh();
  fill(root, h("h1", {}, "Audit log"), h("p", { class: "muted" }, "Every change to this workspace, newest first."), body);
  ctx.every(5000, refresh);
}

// Quota fields as the API names them, with how a person reads and types them.
const QUOTA_FIELDS = [
  ["max_containers", "Containers", 1], ["max_cpu_millis", "CPU (millicores)", 1], ["max_gpus", "GPUs", 1],
  ["max_volume_bytes", "Volumes (MiB)", 1 << 20], ["max_code_bytes", "Code (MiB)", 1 << 20],
  ["max_blob_bytes", "Blobs (MiB)", 1 << 20],
];

function quotaForm(name, quota, refresh) {
  const inputs = QUOTA_FIELDS.map(([key, label, unit]) => [key, unit, h("input", {
    type: "number", min: 0, step: 1, placeholder: "no limit", "aria-label": `${label} of ${name}`,
    value: quota[key] === null ? "" : Math.round(quota[key] / unit), "data-testid": `quota-${name}-${key}`,
  }), label]);
  const form = h("form", { class: "fields", "data-testid": `quota-${name}` },
    inputs.map(([, , input, label]) => h("label", {}, label, input)),
    h("button", { type: "submit", "data-testid": `quota-save-${name}` }, "Save limits"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = Object.fromEntries(inputs.map(([key, unit, input]) => [key, input.value === "" ? null
      : Number(input.value) * unit]));
    try {
      await api.put(`/api/v1/workspaces/${encodeURIComponent(name)}/quota`, body);
      notify(`Limits of ${name} saved`);
      await refresh();
    } catch (err) {
      notify(err.message, true);
    }
  });
  return form;
}

function usage(q) {
  const limit = (used, max, show = String) => (max === null ? `${show(used)} (no limit)` : `${show(used)} of ${show(max)}`);
  return h("ul", { class: "muted" },
    h("li", {}, `Containers: ${limit(q.usage.containers, q.max_containers)}`),
    h("li", {}, `CPU: ${limit(q.usage.cpu_millis, q.max_cpu_millis)} millicores`),
    h("li", {}, `Volumes: ${limit(q.disk.volume_bytes, q.max_volume_bytes, bytes)}; code: `
      + `${limit(q.disk.code_bytes, q.max_code_bytes, bytes)}; blobs: ${limit(q.disk.blob_bytes, q.max_blob_bytes, bytes)}`));
}

export async function workspaces(ctx) {
  const { root, signal } = ctx;
  const body = h("div", { "data-testid": "workspaces" });
  const created = h("div", {});
  async function refresh() {
    const session = await api.get("/dashboard/session", { signal });
    const quotas = await Promise.all(session.workspaces.map((name) =>
      api.get(`/api/v1/workspaces/${encodeURIComponent(name)}/quota`, { signal })));
    fill(body, quotas.map((q) => h("section", { class: "card wide", "data-testid": `workspace-${q.workspace}` },
      h("h2", {}, q.workspace, " ", q.default ? badge("default limits") : badge("own limits")),
      usage(q), quotaForm(q.workspace, q, refresh))));
  }
  const name = h("input", { placeholder: "workspace", "aria-label": "New workspace", required: true, maxlength: 63,
    "data-testid": "new-workspace" });
  const form = h("form", { class: "toolbar" }, name,
    h("button", { type: "submit", "data-testid": "create-workspace" }, "Create with a user token"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await api.post("/api/v1/tokens", { name: `${name.value}-owner`, workspace: name.value, role: "user" });
      fill(created, h("div", { class: "card secret" }, h("p", {}, `Workspace ${made.workspace} and its token `,
        `${made.name} — copy it now: it is not shown again.`), h("pre", { "data-testid": "new-token" }, made.token)));
      name.value = "";
      await refresh();
    } catch (err) {
      notify(err.message, true);
    }
  });
  await refresh();
  fill(root, h("h1", {}, "Workspaces and quotas"),
    h("p", { class: "muted" }, "A workspace is made with its first token. Empty fields have no limit."),
    form, created, body);
}
