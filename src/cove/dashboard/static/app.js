// The dashboard's shell: sign-in, navigation, the workspace switch and a hash router over the pages.
import { api, whenSignedOut } from "./api.js";
import { fill, h, notify } from "./dom.js";
import * as admin from "./pages/admin.js";
import * as deployments from "./pages/deployments.js";
import * as gpus from "./pages/gpus.js";
import * as overview from "./pages/overview.js";
import * as reservoir from "./pages/reservoir.js";
import * as resources from "./pages/resources.js";
import * as tasks from "./pages/tasks.js";
import * as workers from "./pages/workers.js";

// [route, title, page, admin only]; a route's ":name" matches one path segment.
const ROUTES = [
  ["overview", "Overview", overview.render, false],
  ["deployments", "Deployments", deployments.renderList, false],
  ["deployments/:name", null, deployments.renderOne, false],
  ["tasks", "Tasks", tasks.renderList, false],
  ["tasks/:id", null, tasks.renderOne, false],
  ["workers", "Workers", workers.render, true],
  ["gpus", "GPUs", gpus.render, false],
  ["schedules", "Schedules", resources.schedules, false],
  ["sandboxes", "Sandboxes", resources.sandboxes, false],
  ["volumes", "Volumes", resources.volumes, false],
  ["secrets", "Secrets", resources.secrets, false],
  ["images", "Images", resources.images, false],
  ["reservoir", "Reservoir", reservoir.overview, false],
  ["reservoir/:name", null, reservoir.project, false],
  ["reservoir-audit", null, reservoir.audit, true],
  ["tokens", "Tokens", admin.tokens, false],
  ["workspaces", "Workspaces", admin.workspaces, true],
  ["audit", "Audit log", admin.audit, true],
];

const state = { session: null, running: null };
const $ = (id) => document.getElementById(id);

// Live updates: one server-sent event stream per signed-in shell (GET /api/v1/changes, with the session cookie)
// names the kinds of things that changed; the shown page refreshes when one it shows moved. While the stream is
// not open (not yet, a restarting gateway, a proxy that buffers it) pages poll instead.
const live = { source: null, open: false, handlers: new Set() };

function startLive() {
  stopLive();
  const source = new EventSource("/api/v1/changes");
  live.source = source;
  source.addEventListener("ready", (event) => {
    live.open = true;
    document.body.dataset.live = "push";
    // What moved before the stream (re)started is not announced on it: refresh once to catch up.
    const { topics } = JSON.parse(event.data);
    live.handlers.forEach((handler) => handler(topics));
  });
  source.addEventListener("change", (event) => {
    const { topics } = JSON.parse(event.data);
    live.handlers.forEach((handler) => handler(topics));
  });
  source.addEventListener("error", () => {
    live.open = false; // the browser reconnects by itself (the stream says how soon); pages poll meanwhile
    document.body.dataset.live = "poll";
  });
}

function stopLive() {
  if (live.source) live.source.close();
  live.source = null;
  live.open = false;
}

function match(path) {
  const parts = path.split("/").filter(Boolean);
  for (const [route, , page] of ROUTES) {
    const pattern = route.split("/");
    if (pattern.length !== parts.length) continue;
    const params = {};
    if (pattern.every((p, i) => (p.startsWith(":") ? (params[p.slice(1)] = decodeURIComponent(parts[i])) : p === parts[i]))) {
      return { route, page, params };
    }
  }
  return null;
}

function showSignIn(message) {
  stopPage();
  stopLive();
  state.session = null;
  $("shell").hidden = true;
  $("signin").hidden = false;
  const error = $("signin-error");
  error.hidden = !message;
  fill(error, message || "");
  $("signin-token").focus();
}

function showShell(session) {
  state.session = session;
  $("signin").hidden = true;
  $("shell").hidden = false;
  fill($("identity"), `${session.role} · `, h("strong", { "data-testid": "workspace-name" }, session.workspace));
  fill($("nav"), ROUTES.filter(([, title, , adminOnly]) => title && (!adminOnly || session.role === "admin"))
    .map(([route, title]) => h("a", { href: `#/${route}`, "data-route": route }, title)));
  const picker = $("workspace");
  picker.hidden = !session.workspaces;
  if (session.workspaces) {
    fill(picker, session.workspaces.map((name) => h("option", { value: name, selected: name === session.workspace }, name)));
  }
  startLive(); // (again after a workspace switch: the stream follows the session's workspace)
  route();
}

function stopPage() {
  if (!state.running) return;
  state.running.abort.abort();
  state.running.timers.forEach(clearInterval);
  state.running.handlers.forEach((handler) => live.handlers.delete(handler));
  state.running = null;
}

async function route() {
  if (!state.session) return;
  const [path, queryText = ""] = (location.hash.replace(/^#\/?/, "") || "overview").split("?");
  const found = match(path);
  stopPage();
  const root = $("page");
  document.querySelectorAll("#nav a").forEach((a) => {
    a.classList.toggle("active", path === a.dataset.route || path.startsWith(`${a.dataset.route}/`));
  });
  if (!found) {
    fill(root, h("h1", {}, "Not found"), h("p", {}, `No page at ${path}.`));
    return;
  }
  const running = { abort: new AbortController(), timers: [], handlers: [] };
  state.running = running;
  const ctx = {
    root,
    params: found.params,
    query: new URLSearchParams(queryText),
    session: state.session,
    signal: running.abort.signal,
    /**
     * Keep the page live while it is shown. With `topics` (kinds the change stream names: "deployments",
     * "containers", "events", "tasks"), run `refresh` when one of them moved, and every `ms` only while no stream
     * is open; without, every `ms` (what the page shows moves with no mark the stream watches: charts, workers).
     * Refreshes never overlap: one asked for while another runs follows it. The body's `data-refreshed` says
     * what caused the last one (`push` or `poll`), so a look in the browser tells which kept the page live.
     */
    every(ms, refresh, topics = null) {
      let busy = false;
      let again = null;
      const run = async (cause) => {
        if (busy) {
          again = cause;
          return;
        }
        busy = true;
        try {
          await refresh();
          if (!running.abort.signal.aborted) document.body.dataset.refreshed = cause;
        } catch {
          // the next change or poll tries again
        } finally {
          busy = false;
          if (again && !running.abort.signal.aborted) {
            const next = again;
            again = null;
            run(next);
          }
        }
      };
      if (topics) {
        const handler = (changed) => {
          if (changed.some((topic) => topics.includes(topic))) run("push");
        };
        live.handlers.add(handler);
        running.handlers.push(handler);
      }
      running.timers.push(setInterval(() => { if (!topics || !live.open) run("poll"); }, ms));
    },
    /** Go to a URL of this dashboard with other query parameters. */
    go(hash) { location.hash = hash; },
  };
  fill(root, h("p", { class: "loading" }, "Loading…"));
  try {
    await found.page(ctx);
  } catch (err) {
    if (running.abort.signal.aborted) return;
    fill(root, h("h1", {}, "Could not load this page"), h("p", { class: "error", role: "alert" }, err.message));
  }
}

async function signIn(event) {
  event.preventDefault();
  const button = $("signin-submit");
  button.disabled = true;
  try {
    const session = await api.post("/dashboard/session", { token: $("signin-token").value }, { quiet401: true });
    $("signin-token").value = "";
    showShell(session);
  } catch (err) {
    showSignIn(err.message);
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  try {
    await api.del("/dashboard/session", { quiet401: true });
  } catch {
    // already ended: the form shows anyway
  }
  showSignIn("Signed out.");
}

async function switchWorkspace() {
  try {
    const session = await api.put("/dashboard/session/workspace", { workspace: $("workspace").value });
    notify(`Now in workspace ${session.workspace}`);
    showShell(session);
  } catch (err) {
    notify(err.message, true);
  }
}

async function start() {
  whenSignedOut((message) => showSignIn(message));
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("workspace").addEventListener("change", switchWorkspace);
  window.addEventListener("hashchange", route);
  try {
    const session = await api.get("/dashboard/session", { quiet401: true });
    if (session.signed_in) showShell(session);
    else showSignIn("");
  } catch (err) {
    showSignIn(err.message);
  }
}

start();
