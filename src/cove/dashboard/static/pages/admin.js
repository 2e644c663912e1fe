// Tokens (a new token's secret is shown once) and the audit log (admins).
import { api, withQuery } from "../api.js";
import { action, ago, badge, fill, h, notify, table } from "../dom.js";

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
