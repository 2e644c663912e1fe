// The workspace's other resources: schedules, sandboxes, volumes, secrets (names only) and images.
import { api, getReply, withQuery } from "../api.js";
import { action, ago, badge, bytes, fill, h, notify, table } from "../dom.js";

async function page(ctx, title, load, view) {
  const body = h("div", {});
  const refresh = async () => fill(body, view(await load(), refresh));
  await refresh();
  fill(ctx.root, h("h1", {}, title), body);
  return refresh;
}

export async function schedules(ctx) {
  await page(ctx, "Schedules", () => api.get("/api/v1/schedules", { signal: ctx.signal }), (rows) => table([
    ["Schedule", (s) => h("a", { href: `#/deployments/${encodeURIComponent(s.name)}` }, s.name)],
    ["When", (s) => `${s.when} (${s.timezone})`], ["Next run", (s) => new Date(s.next_run * 1000).toLocaleString()],
    ["Last runs", (s) => s.recent_runs.slice(0, 5).map((r) => r.task_state || r.state).join(" · ") || "—"],
    ["Missed ticks", (s) => s.missed],
  ], rows, "No schedules."));
}

/** A command line as argv: words split at spaces, "double" or 'single' quotes keep spaces (no shell runs it). */
export function splitCommand(line) {
  const words = [];
  let word = null;
  let quote = null;
  for (const ch of line) {
    if (quote) {
      if (ch === quote) quote = null;
      else word += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      word = word ?? "";
    } else if (/\s/.test(ch)) {
      if (word !== null) words.push(word);
      word = null;
    } else {
      word = (word ?? "") + ch;
    }
  }
  if (quote) throw new Error(`unclosed ${quote} in the command`);
  if (word !== null) words.push(word);
  return words;
}

/** All of a running command's stdout or stderr, read in pieces until it ends. */
async function readAll(base, name, signal) {
  let offset = 0;
  let text = "";
  for (;;) {
    const reply = await getReply(withQuery(`${base}/${name}`, { offset, wait: 10 }), { signal });
    text += await reply.text();
    offset = Number(reply.headers.get("x-cove-next") || offset);
    if (reply.headers.get("x-cove-eof") === "1") return text;
  }
}

/** A form that runs a command in a running sandbox and shows its exit code, stdout and stderr. */
function execPanel(ctx, rows) {
  const running = rows.filter((s) => s.state === "running" || s.state === "ready");
  const picker = h("select", { "aria-label": "Sandbox", "data-testid": "exec-sandbox" },
    running.map((s) => h("option", { value: s.id }, s.id)));
  const command = h("input", { type: "text", placeholder: "python -c 'print(1)'", "aria-label": "Command",
    "data-testid": "exec-command", size: 50, required: true });
  const output = h("div", { "data-testid": "exec-output" });
  const form = h("form", { class: "toolbar" }, picker, command, h("button", { type: "submit" }, "Run"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const argv = splitCommand(command.value);
      if (!argv.length) throw new Error("type a command to run");
      const sandbox = `/api/v1/sandboxes/${encodeURIComponent(picker.value)}`;
      const started = await api.post(`${sandbox}/exec`, { argv, cwd: null, env: {} }, { signal: ctx.signal });
      const base = `${sandbox}/exec/${encodeURIComponent(started.id)}`;
      fill(output, h("p", { class: "muted" }, `running ${argv.join(" ")}…`));
      const [stdout, stderr] = await Promise.all([readAll(base, "stdout", ctx.signal), readAll(base, "stderr", ctx.signal)]);
      let exit = null;
      while (exit === null) {
        exit = (await api.get(withQuery(`${base}/wait`, { wait: 10 }), { signal: ctx.signal })).exit_code;
      }
      fill(output,
        h("p", {}, "exit code ", h("strong", { "data-testid": "exec-exit" }, String(exit))),
        h("pre", { "data-testid": "exec-stdout" }, stdout || "(no output)"),
        stderr ? h("pre", { class: "stderr", "data-testid": "exec-stderr" }, stderr) : null);
    } catch (err) {
      fill(output, h("p", { class: "error", role: "alert" }, err.message));
    } finally {
      button.disabled = false;
    }
  });
  return running.length ? h("section", { class: "card wide" }, h("h2", {}, "Run a command"), form, output) : null;
}

export async function sandboxes(ctx) {
  const panel = h("div", {});
  let shown = "";
  const refresh = await page(ctx, "Sandboxes", async () => {
    const rows = await api.get("/api/v1/sandboxes", { signal: ctx.signal });
    const key = rows.map((s) => `${s.id}:${s.state}`).join(",");
    if (key !== shown) {  // redrawn only when the sandboxes change: a command being typed survives a poll
      shown = key;
      fill(panel, execPanel(ctx, rows));
    }
    return rows;
  },
    (rows, again) => table([
      ["Sandbox", (s) => s.id], ["State", (s) => badge(s.state)], ["Created", (s) => ago(s.created_at)],
      ["Last active", (s) => ago(s.last_active)], ["Image", (s) => h("code", {}, s.image_id.slice(0, 16))],
      ["", (s) => action("Terminate", async () => {
        await api.del(`/api/v1/sandboxes/${encodeURIComponent(s.id)}`);
        notify(`Terminated ${s.id}`);
        await again();
      }, { confirm: `Terminate sandbox ${s.id}?`, danger: true })],
    ], rows, "No sandboxes.", { "data-testid": "sandboxes" }));
  ctx.root.append(panel);
  ctx.every(5000, refresh);
}

export async function volumes(ctx) {
  const volume = ctx.query.get("volume");
  const prefix = ctx.query.get("path") || "";
  if (!volume) {
    await page(ctx, "Volumes", () => api.get("/api/v1/volumes", { signal: ctx.signal }), (rows) => table([
      ["Volume", (v) => h("a", { href: withQuery("#/volumes", { volume: v.name }) }, v.name)],
    ], rows, "No volumes."));
    return;
  }
  const base = `/api/v1/volumes/${encodeURIComponent(volume)}/files`;
  const fileUrl = (path) => `${base}/${path.split("/").map(encodeURIComponent).join("/")}`;
  const refresh = await page(ctx, `Volume ${volume}`,
    () => api.get(withQuery(base, { path: prefix }), { signal: ctx.signal }),
    (rows) => h("div", {},
      h("p", {}, h("a", { href: "#/volumes" }, "← Volumes"), ` / ${prefix}`),
      table([
        ["Name", (f) => (f.type === "dir"
          ? h("a", { href: withQuery("#/volumes", { volume, path: `${prefix}${f.name}/` }) }, `${f.name}/`)
          : h("a", { href: fileUrl(`${prefix}${f.name}`), download: f.name }, f.name))],
        ["Size", (f) => (f.type === "file" ? bytes(f.size) : "")], ["Modified", (f) => ago(f.mtime)],
      ], rows, "Empty.", { "data-testid": "files" })));
  const picker = h("input", { type: "file", multiple: true, "aria-label": "Files to upload", "data-testid": "upload-files" });
  const form = h("form", { class: "toolbar" }, picker, h("button", { type: "submit", "data-testid": "upload" }, "Upload"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      for (const file of picker.files) {
        const stored = await api.upload(fileUrl(`${prefix}${file.name}`), file, { signal: ctx.signal });
        notify(`Uploaded ${stored.path} (${bytes(stored.size)})`);
      }
      picker.value = "";
      await refresh();
    } catch (err) {
      notify(err.message, true);
    }
  });
  ctx.root.append(h("section", { class: "card wide" }, h("h2", {}, `Upload into /${prefix}`), form));
}

export async function secrets(ctx) {
  await page(ctx, "Secrets", () => api.get("/api/v1/secrets", { signal: ctx.signal }), (rows) => h("div", {},
    h("p", { class: "muted" }, "Names and keys only: values never leave the gateway except into containers."),
    table([
      ["Secret", (s) => s.name], ["Keys", (s) => s.keys.join(", ")], ["Created", (s) => ago(s.created_at)],
      ["Updated", (s) => ago(s.updated_at)],
    ], rows, "No secrets.")));
}

function gcButton(refresh) {
  return action("Remove unused images", async () => {
    const report = await api.post("/api/v1/images/gc");
    notify(`Removed ${report.images.length} images, ${report.layers.length} layers and ${report.bases.length} bases:`
      + ` ${bytes(report.freed_bytes)} freed`);
    await refresh();
  }, { confirm: "Remove every image, system layer and base that no deployment or container uses?", danger: true,
    testid: "gc" });
}

export async function images(ctx) {
  const refresh = await page(ctx, "Images", () => api.get("/api/v1/images", { signal: ctx.signal }), (rows) => table([
    ["Image", (i) => h("code", {}, i.id.slice(0, 16))], ["Python", (i) => i.python_version],
    ["Packages", (i) => [...i.python_packages, ...i.system_packages].join(", ") || "—"],
    ["Size", (i) => bytes(i.size_bytes)], ["In use by", (i) => i.deployments.map((d) => `${d.name} v${d.version}`)
      .join(", ") || (i.in_use ? "another workspace" : "—")],
    ["Last used", (i) => ago(i.last_used)],
  ], rows, "No images built yet.", { "data-testid": "images" }));
  if (ctx.session.role === "admin") ctx.root.append(h("div", { class: "actions" }, gcButton(refresh)));
}
