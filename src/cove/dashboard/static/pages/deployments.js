// Deployments: the list, and one deployment's versions, config, URL, containers, events and live logs.
import { api, followNdjson, withQuery } from "../api.js";
import { historyCharts } from "../charts.js";
import { action, ago, badge, copyButton, fill, h, notify, table } from "../dom.js";

const REFRESH_MS = 5000;
const MAX_LOG_LINES = 2000;

const nameLink = (name) => h("a", { href: `#/deployments/${encodeURIComponent(name)}` }, name);

export async function renderList(ctx) {
  const { root, signal } = ctx;
  const showStopped = ctx.query.get("all") === "1";
  const body = h("div", {});
  async function refresh() {
    const rows = await api.get(withQuery("/api/v1/deployments", { all: showStopped || "" }), { signal });
    fill(body, table([
      ["Name", (d) => nameLink(d.name)],
      ["Kind", (d) => d.kind],
      ["Version", (d) => `v${d.version}`],
      ["State", (d) => badge(d.state)],
      ["Traffic", (d) => `${d.traffic_percent} %`],
      ["Deployed", (d) => ago(d.created_at)],
      ["Waiting because", (d) => d.pending_reason || ""],
    ], rows, "No deployments yet: cove deploy app.py", { "data-testid": "deployments" }));
  }
  await refresh();
  fill(root, h("h1", {}, "Deployments"),
    h("p", {}, h("a", { href: showStopped ? "#/deployments" : "#/deployments?all=1" },
      showStopped ? "Hide stopped versions" : "Show stopped versions")),
    body);
  ctx.every(REFRESH_MS, refresh, ["deployments", "containers"]);
}

function snippets(d) {
  if (!d.url) return h("p", { class: "empty" }, `A ${d.kind} answers no calls over HTTP.`);
  if (d.kind === "function") {
    return h("div", {}, h("p", {}, "Called from Python with ", h("code", {}, `${d.function}.remote(...)`),
      " (its arguments travel pickled):"), h("pre", {}, d.url));
  }
  const body = d.kind === "asgi" ? "" : " -d '{}'";
  const curl = `curl -H "Authorization: Bearer $COVE_TOKEN"${body} ${d.url}`;
  const python = [
    "import os",
    "import httpx",
    "",
    `reply = httpx.${d.kind === "asgi" ? "get" : "post"}(`,
    `    "${d.url}",`,
    '    headers={"Authorization": f"Bearer {os.environ[\'COVE_TOKEN\']}"},',
    d.kind === "asgi" ? null : "    json={},",
    ")",
    "print(reply.json())",
  ].filter((line) => line !== null).join("\n");
  return h("div", { class: "snippets" },
    h("p", {}, "URL ", h("code", { "data-testid": "deployment-url" }, d.url), " ", copyButton(d.url)),
    h("h3", {}, "curl ", copyButton(curl)), h("pre", {}, curl),
    h("h3", {}, "Python ", copyButton(python)), h("pre", {}, python));
}

function logView(ctx, name, containers) {
  const lines = h("div", { class: "log", "data-testid": "log", role: "log", "aria-live": "polite" });
  const search = h("input", { type: "search", placeholder: "Search the log", "aria-label": "Search the log" });
  const picker = h("select", { "aria-label": "Container" }, h("option", { value: "" }, "All containers"),
    containers.filter((c) => c.id).map((c) => h("option", { value: c.id }, c.id)));
  const status = h("small", { class: "muted" }, "following…");
  const shown = (line) => (!picker.value || line.dataset.container === picker.value)
    && (!search.value || line.textContent.toLowerCase().includes(search.value.toLowerCase()));
  const refilter = () => lines.querySelectorAll(".line").forEach((line) => { line.hidden = !shown(line); });
  search.addEventListener("input", refilter);
  picker.addEventListener("change", refilter);
  const onRecord = (record) => {
    const stick = lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 4;
    const line = h("div", { class: `line ${record.stream}`, dataset: { container: record.container_id } },
      h("span", { class: "ts" }, new Date(record.ts * 1000).toLocaleTimeString()), " ", record.text);
    line.hidden = !shown(line);
    lines.append(line);
    while (lines.childElementCount > MAX_LOG_LINES) lines.firstElementChild.remove();
    if (stick) lines.scrollTop = lines.scrollHeight;
  };
  const path = withQuery("/api/v1/logs", { target: name, follow: "true", tail: 200 });
  followNdjson(path, onRecord, ctx.signal)
    .then(() => fill(status, "the log stream ended"))
    .catch((err) => { if (!ctx.signal.aborted) fill(status, `log stream stopped: ${err.message}`); });
  return h("div", {}, h("div", { class: "toolbar" }, picker, search, status), lines);
}

function containerTable(containers) {
  // The worker's phase timings are in milliseconds (order_ms, image_ms, ..., total_ms).
  const phases = (c) => Object.entries(c.timings || {})
    .map(([k, v]) => `${k.replace(/_ms$/, "")} ${Math.round(Number(v))} ms`).join(", ");
  return table([
    ["Container", (c) => c.id || "(backlog)"], ["Version", (c) => `v${c.version}`], ["State", (c) => badge(c.state)],
    ["Worker", (c) => c.worker_id || "—"], ["Started", (c) => ago(c.created_at)],
    ["Cold start", (c) => phases(c) || "—"], ["Reason", (c) => c.reason || (c.exit_code ?? "")],
  ], containers, "No containers: it starts them when called.", { "data-testid": "containers" });
}

function versionTable(versions) {
  return table([
    ["Version", (d) => `v${d.version}`], ["State", (d) => badge(d.state)], ["Serves", (d) => `${d.traffic_percent} %`],
    ["Image", (d) => h("code", {}, d.image_id.slice(0, 16))], ["Code", (d) => h("code", {}, d.code_hash.slice(0, 12))],
    ["Deployed", (d) => ago(d.created_at)],
  ], versions, "No versions.", { "data-testid": "versions" });
}

function actions(ctx, name, versions, reload) {
  const live = versions.filter((d) => d.state === "active");
  const earlier = versions.filter((d) => !live.length || d.version < Math.max(...live.map((x) => x.version)));
  const to = h("select", { "aria-label": "Version to roll back to" },
    earlier.map((d) => h("option", { value: d.version }, `v${d.version}`)));
  return h("div", { class: "actions" },
    live.length ? action("Stop", async () => {
      const done = await api.post(`/api/v1/deployments/${encodeURIComponent(name)}/stop`);
      notify(`Stopped ${name}: ${done.stopped_versions.map((v) => `v${v}`).join(", ")}`);
      await reload();
    }, { confirm: `Stop every version of ${name}?`, danger: true, testid: "stop" }) : null,
    earlier.length ? h("span", { class: "inline" }, "Roll back to ", to, action("Roll back", async () => {
      const done = await api.post(`/api/v1/deployments/${encodeURIComponent(name)}/rollback`, { to: Number(to.value) });
      notify(`${name} v${done.version} is live (made from v${done.source_version})`);
      await reload();
    }, { confirm: `Make v${to.value || "?"} of ${name} live again?`, testid: "rollback" })) : null);
}

// The autoscaler settings the scale form edits, with their labels; keep_warm_seconds is the deployment's own.
const SCALING = [
  ["min_containers", "Min containers"], ["max_containers", "Max containers"],
  ["tasks_per_container", "Inputs per container"], ["buffer_containers", "Buffer containers"],
  ["keep_warm_seconds", "Keep warm (s)"],
];

function scaleForm(name, current, reload) {
  const now = { ...current.config.autoscaler, keep_warm_seconds: current.config.keep_warm_seconds };
  const inputs = SCALING.map(([key, label]) => [key, h("input", {
    type: "number", step: key === "keep_warm_seconds" ? "any" : "1", min: key === "keep_warm_seconds" ? "-1" : "0",
    value: now[key], "aria-label": label, "data-testid": `scale-${key}`,
  }), label]);
  const form = h("form", { class: "scale", "data-testid": "scale" },
    inputs.map(([, input, label]) => h("label", {}, label, input)),
    h("button", { type: "submit", "data-testid": "scale-submit" }, "Set limits"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const changes = {};
    for (const [key, input] of inputs) {
      if (input.value !== "" && Number(input.value) !== now[key]) changes[key] = Number(input.value);
    }
    if (!Object.keys(changes).length) {
      notify("Nothing changed");
      return;
    }
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const done = await api.patch(`/api/v1/deployments/${encodeURIComponent(name)}/scaling`, changes);
      notify(`${name} v${done.version} is live with min ${done.scaling.min_containers}, max ${done.scaling.max_containers}`);
      await reload();
    } catch (err) {
      notify(err.message, true);
    } finally {
      button.disabled = false;
    }
  });
  return h("section", { class: "card wide" }, h("h2", {}, "Scale limits"),
    h("p", { class: "muted" }, "Changing them makes a new version with the same code and image: nothing is rebuilt."),
    form);
}

export async function renderOne(ctx) {
  const { root, signal, params } = ctx;
  const name = params.name;
  const head = h("div", {});
  const versionsBox = h("section", { class: "card wide" });
  const containersBox = h("section", { class: "card wide" });
  const eventsBox = h("section", { class: "card wide" });
  const chartsBox = h("section", { class: "card wide", "data-testid": "history" });
  let logs = null;
  async function refresh() {
    const [all, containers, events, history] = await Promise.all([
      api.get(withQuery("/api/v1/deployments", { all: "true" }), { signal }),
      api.get(withQuery("/api/v1/containers", { all: "true" }), { signal }),
      api.get(withQuery("/api/v1/events", { deployment: name, limit: 30 }), { signal }),
      api.get(`/api/v1/deployments/${encodeURIComponent(name)}/history`, { signal }).catch((err) => err),
    ]);
    const versions = all.filter((d) => d.name === name).sort((a, b) => b.version - a.version);
    if (!versions.length) throw new Error(`no deployment named ${name} in this workspace`);
    const mine = containers.filter((c) => c.deployment === name).slice(0, 50);
    const current = versions.find((d) => d.state === "active") || versions[0];
    const key = versions.map((d) => `${d.version}:${d.state}:${d.traffic_percent}`).join(",");
    if (head.dataset.key !== key) {  // redrawn only on a change: an open menu or a pending click survives a poll
      head.dataset.key = key;
      fill(head,
      h("h1", {}, name, " ", h("span", { "data-testid": "deployment-state" }, badge(current.state))),
      h("p", { class: "muted" }, `${current.kind} · ${current.module}:${current.function} · v${current.version}`),
      actions(ctx, name, versions, refresh),
      current.state === "active" && current.kind !== "sandbox" ? scaleForm(name, current, refresh) : null,
      h("section", { class: "card wide" }, h("h2", {}, "Call it"), snippets(current)),
      h("details", { class: "card wide" }, h("summary", {}, "Config"),
        h("pre", {}, JSON.stringify(current.config, null, 2))));
    }
    fill(chartsBox, h("h2", {}, "The last hour"), history instanceof Error
      ? h("p", { class: "muted" }, `No history: ${history.message}`) : historyCharts(history));
    fill(versionsBox, h("h2", {}, "Versions"), versionTable(versions));
    fill(containersBox, h("h2", {}, "Containers"), containerTable(mine));
    fill(eventsBox, h("h2", {}, "Events"), table([
      ["When", (e) => ago(e.ts)], ["Kind", (e) => e.kind], ["Version", (e) => (e.version ? `v${e.version}` : "")],
      ["Why", (e) => e.reason],
    ], events.events.slice().reverse(), "No events."));
    if (!logs) logs = logView(ctx, name, mine);
  }
  await refresh();
  fill(root, head, chartsBox, versionsBox, containersBox,
    h("section", { class: "card wide" }, h("h2", {}, "Logs"), logs), eventsBox);
  ctx.every(REFRESH_MS, refresh);
}
