// The package reservoir: indexes, project search, a project's files (license, advisories, quarantine), the policy,
// usage, the audit report and imports held for review. Changes (quarantine, release, approve, reject) are an admin's.
import { api, withQuery } from "../api.js";
import { action, badge, bytes, fill, h, notify, table } from "../dom.js";

const PAGE = 50;
const BASE = "/api/v1/reservoir";
const projectLink = (name) => h("a", { href: `#/reservoir/${encodeURIComponent(name)}` }, name);
const tags = (items) => (items.length ? items.map((id) => h("span", { class: "tag" }, id)) : "—");

function searchForm(ctx, q, index, indexes) {
  const input = h("input", { type: "search", value: q, placeholder: "Search projects", "aria-label": "Search projects",
    "data-testid": "reservoir-search" });
  const picker = h("select", { "aria-label": "Index" }, h("option", { value: "" }, "All indexes"),
    indexes.map((i) => h("option", { value: i.name, selected: i.name === index }, i.name)));
  const form = h("form", { class: "search" }, input, picker, h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.go(withQuery("#/reservoir", { q: input.value.trim(), index: picker.value }));
  });
  return form;
}

function reviews(ctx, refresh) {
  return async () => {
    const held = await api.get(`${BASE}/reviews`, { signal: ctx.signal });
    const decide = (r, verb) => action(verb === "approve" ? "Approve" : "Reject", async () => {
      const done = await api.post(`${BASE}/reviews/${r.id}/${verb}`, {});
      notify(`Import #${r.id} ${done.status}`);
      await refresh();
    }, { confirm: `${verb === "approve" ? "Apply" : "Drop"} import #${r.id} from site ${r.source_id}?`,
      danger: verb === "reject", testid: `${verb}-${r.id}` });
    return table([
      ["Import", (r) => `#${r.id}`], ["From site", (r) => h("code", {}, r.source_id.slice(0, 12))],
      ["Serials", (r) => `${r.base_serial} → ${r.target_serial}`], ["Bundle", (r) => r.bundle || ""],
      ["Changes", (r) => Object.entries(r.summary.kinds || {}).map(([k, n]) => `${k} ${n}`).join(", ")],
      ["Held since", (r) => r.created], ["", (r) => h("span", { class: "inline" }, decide(r, "approve"), decide(r, "reject"))],
    ], held, "No imports wait for review.", { "data-testid": "reviews" });
  };
}

function bundleTable(rows) {
  return table([
    ["When", (b) => b.created], ["", (b) => badge(b.direction === "export" ? "exported" : "imported")],
    ["Site", (b) => h("code", {}, b.site_id.slice(0, 12))], ["Serials", (b) => `${b.base_serial} → ${b.target_serial}`],
    ["Events", (b) => b.events], ["Bundle", (b) => b.name],
  ], rows, "No bundle exported or imported yet.", { "data-testid": "reservoir-bundles" });
}

export async function overview(ctx) {
  const { root, signal, query, session } = ctx;
  const q = query.get("q") || "";
  const index = query.get("index") || "";
  const offset = Math.max(0, Number(query.get("offset")) || 0);
  const admin = session.role === "admin";
  const indexesBox = h("section", { class: "card" });
  const projectsBox = h("section", { class: "card wide" });
  const reviewsBox = h("section", { class: "card wide" });
  const usageBox = h("section", { class: "card" });
  const policyBox = h("section", { class: "card" });
  const bundlesBox = h("section", { class: "card wide" });
  let listReviews = null;
  async function refresh() {
    const [indexes, projects, usage, policy, held, bundles] = await Promise.all([
      api.get(`${BASE}/indexes`, { signal }),
      api.get(withQuery(`${BASE}/projects`, { q, index, limit: PAGE, offset }), { signal }),
      api.get(withQuery(`${BASE}/stats`, { days: 7, by: "project" }), { signal }),
      api.get(`${BASE}/policy`, { signal }),
      listReviews ? listReviews() : null,
      admin ? api.get(withQuery(`${BASE}/bundles`, { limit: 20 }), { signal }) : null,
    ]);
    fill(indexesBox, h("h2", {}, `Indexes · serial ${indexes.serial}`), table([
      ["Index", (i) => i.name], ["Kind", (i) => i.kind], ["Projects", (i) => i.projects], ["Files", (i) => i.files],
      ["Claims", (i) => i.claims],
    ], indexes.indexes, "No indexes."), indexes.contested.length ? h("p", { class: "muted" },
      `Held by several indexes and claimed by none (not served combined): ${indexes.contested.map((c) => c.project).join(", ")}`) : null);
    const page = Math.floor(offset / PAGE) + 1;
    const pages = Math.max(1, Math.ceil(projects.total / PAGE));
    const at = (o) => withQuery("#/reservoir", { q, index, offset: o || "" });
    fill(projectsBox, h("h2", {}, "Projects"), searchForm(ctx, q, index, indexes.indexes), table([
      ["Project", (p) => projectLink(p.name)], ["Files", (p) => p.files],
      ["Quarantined", (p) => (p.quarantined ? badge(`${p.quarantined} quarantined`) : "")],
    ], projects.projects, q ? `No project matches ${q}.` : "The reservoir holds no packages yet.",
    { "data-testid": "reservoir-projects" }),
    h("div", { class: "pager" }, offset > 0 ? h("a", { href: at(offset - PAGE) }, "← Previous") : null,
      h("span", {}, `Page ${page} of ${pages} · ${projects.total} projects`),
      offset + PAGE < projects.total ? h("a", { href: at(offset + PAGE) }, "Next →") : null));
    fill(usageBox, h("h2", {}, `Downloads since ${usage.since}`), table([
      ["Project", (r) => r.project], ["Day", (r) => r.day], ["Requests", (r) => r.requests], ["Bytes", (r) => bytes(r.bytes)],
    ], usage.rows.slice(-20).reverse(), "Nothing downloaded in the last 7 days.", { "data-testid": "reservoir-usage" }));
    fill(policyBox, h("h2", {}, "Policy"), h("p", { class: "muted" }, `${policy.advisories} advisories loaded`),
      policy.policy ? h("pre", { "data-testid": "reservoir-policy" }, policy.policy)
        : h("p", { class: "empty" }, "No policy: every license is allowed, advisories are reported."));
    if (held) fill(reviewsBox, h("h2", {}, "Imports held for review"), held);
    if (bundles) fill(bundlesBox, h("h2", {}, "Bundles exported and imported"), bundleTable(bundles));
  }
  if (admin) listReviews = reviews(ctx, refresh);
  await refresh();
  fill(root, h("h1", {}, "Reservoir"),
    admin ? h("p", {}, h("a", { href: "#/reservoir-audit" }, "Audit report: every file judged by the policy now")) : null,
    projectsBox, h("div", { class: "grid" }, indexesBox, policyBox, usageBox), admin ? reviewsBox : null,
    admin ? bundlesBox : null);
  ctx.every(10000, refresh);
}

export async function project(ctx) {
  const { root, signal, params, session } = ctx;
  const admin = session.role === "admin";
  const body = h("div", {});
  async function refresh() {
    const data = await api.get(`${BASE}/projects/${encodeURIComponent(params.name)}`, { signal });
    const change = (f) => (f.status === "quarantined"
      ? action("Release", async () => {
        await api.post(`${BASE}/files/${encodeURIComponent(f.filename)}/release`);
        notify(`Released ${f.filename}`);
        await refresh();
      }, { confirm: `Serve ${f.filename} again?`, testid: `release-${f.filename}` })
      : action("Quarantine", async () => {
        await api.post(`${BASE}/files/${encodeURIComponent(f.filename)}/quarantine`,
          { reason: "quarantined from the dashboard" });
        notify(`Quarantined ${f.filename}`);
        await refresh();
      }, { confirm: `Stop serving ${f.filename}?`, danger: true, testid: `quarantine-${f.filename}` }));
    fill(body, table([
      ["File", (f) => f.filename], ["Version", (f) => f.version], ["Index", (f) => f.index], ["Size", (f) => bytes(f.size)],
      ["License", (f) => f.license || "unknown"], ["Advisories", (f) => tags(f.vulnerabilities)],
      ["State", (f) => h("span", { "data-testid": `file-state-${f.filename}` }, badge(f.status),
        f.reason ? ` ${f.reason}` : "", f.yanked ? " (yanked)" : "")],
      ["Policy finds", (f) => f.policy.join("; ") || "—"],
      ...(admin ? [["", change]] : []),
    ], data.files, "No files.", { "data-testid": "reservoir-files" }));
  }
  await refresh();
  fill(root, h("p", {}, h("a", { href: "#/reservoir" }, "← Reservoir")), h("h1", {}, params.name), body);
  ctx.every(10000, refresh);
}

export async function audit(ctx) {
  const { root, signal } = ctx;
  const report = await api.get(`${BASE}/audit`, { signal });
  const flagged = report.files.filter((f) => f.status === "quarantined" || f.vulnerabilities.length || !f.license);
  fill(root, h("p", {}, h("a", { href: "#/reservoir" }, "← Reservoir")), h("h1", {}, "Audit report"),
    h("p", { class: "muted" }, `Serial ${report.serial}; ${report.advisories} advisories. A dry run: nothing changes `
      + "(cove reservoir audit applies it)."),
    h("section", { class: "card wide" }, h("h2", {}, "Summary"), table([["What", ([k]) => k.replace(/_/g, " ")],
      ["Files", ([, v]) => v]], Object.entries(report.summary), "Nothing.", { "data-testid": "audit-summary" })),
    h("section", { class: "card wide" }, h("h2", {}, "Files that need a look"), table([
      ["Project", (f) => projectLink(f.project)], ["File", (f) => f.filename], ["License", (f) => f.license || "unknown"],
      ["Advisories", (f) => tags(f.vulnerabilities)], ["State", (f) => badge(f.status)], ["Why", (f) => f.reason || ""],
    ], flagged, "Every file passes the policy.", { "data-testid": "audit-files" })));
}
