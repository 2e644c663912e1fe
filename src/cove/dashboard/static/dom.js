// Building pages from data without ever parsing data as markup: every string becomes a text node.

/** An element: h("a", {href: "#/x", class: "btn"}, "text", child, [more]). Strings are text, never HTML. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A table: columns are [title, row => cell] pairs; an empty list shows `empty`. */
export function table(columns, rows, empty = "Nothing here yet.", attrs = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      attrs,
      h("thead", {}, h("tr", {}, columns.map(([title]) => h("th", {}, title)))),
      h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row)))))),
    ),
  );
}

export function badge(state) {
  return h("span", { class: `badge state-${String(state).toLowerCase()}` }, state);
}

export function ago(ts) {
  if (!ts) return "—";
  const s = Math.max(0, Date.now() / 1000 - ts);
  const text = s < 60 ? `${Math.round(s)} s` : s < 3600 ? `${Math.round(s / 60)} min` : s < 86400
    ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} d`;
  return h("time", { datetime: new Date(ts * 1000).toISOString(), title: new Date(ts * 1000).toLocaleString() },
    `${text} ago`);
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** A horizontal bar: used / total, as inline SVG (no chart library needed for a gauge). */
export function gauge(used, total, label) {
  const share = total > 0 ? Math.min(1, Math.max(0, used / total)) : 0;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 100 8");
  svg.setAttribute("class", "gauge");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const back = document.createElementNS(svg.namespaceURI, "rect");
  Object.entries({ width: 100, height: 8, rx: 2, class: "gauge-back" }).forEach(([k, v]) => back.setAttribute(k, v));
  const bar = document.createElementNS(svg.namespaceURI, "rect");
  Object.entries({ width: (share * 100).toFixed(1), height: 8, rx: 2, class: "gauge-bar" })
    .forEach(([k, v]) => bar.setAttribute(k, v));
  svg.append(back, bar);
  return h("span", { class: "gauge-wrap", title: label }, svg, h("small", {}, label));
}

/** A button that runs an action, disabled while it runs, showing its error next to it. */
export function action(label, run, { confirm: question, danger = false, testid } = {}) {
  const btn = h("button", { type: "button", class: danger ? "danger" : "", "data-testid": testid }, label);
  btn.addEventListener("click", async () => {
    if (question && !window.confirm(question)) return;
    btn.disabled = true;
    try {
      await run();
    } catch (err) {
      notify(err.message, true);
    } finally {
      btn.disabled = false;
    }
  });
  return btn;
}

/** A short message at the top of the page. */
export function notify(message, isError = false) {
  let box = document.getElementById("notice");
  if (!box) {
    box = h("div", { id: "notice", role: "status" });
    document.body.append(box);
  }
  fill(box, message);
  box.className = isError ? "notice error" : "notice";
  clearTimeout(box.timer);
  box.timer = setTimeout(() => { box.className = "notice hidden"; }, isError ? 8000 : 3000);
}

/** Text into the clipboard, where the browser allows it (a secure context), else selected for copying. */
export function copyButton(text) {
  return action("Copy", async () => {
    await navigator.clipboard.writeText(text);
    notify("Copied");
  });
}
