// The control API with the session cookie: same-origin requests, JSON in and out, errors as exceptions.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let onSignedOut = () => {};

/** What to do when the API says the session ended (401): the app shows the sign-in form. */
export function whenSignedOut(handler) {
  onSignedOut = handler;
}

async function request(method, path, body, { signal, quiet401 = false, raw = false } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" }, signal };
  if (raw) {  // bytes as they are (a file to upload)
    init.headers["Content-Type"] = "application/octet-stream";
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const reply = await fetch(path, init);
  if (reply.ok) {
    const type = reply.headers.get("content-type") || "";
    return type.includes("json") ? reply.json() : reply.text();
  }
  let message = `${method} ${path}: HTTP ${reply.status}`;
  try {
    const data = await reply.json();
    if (data && data.error && data.error.message) message = data.error.message;
  } catch {
    // not JSON: keep the status line
  }
  if (reply.status === 401 && !quiet401) onSignedOut(message);
  throw new ApiError(reply.status, message);
}

export const api = {
  get: (path, options) => request("GET", path, undefined, options),
  post: (path, body = {}, options) => request("POST", path, body, options),
  put: (path, body = {}, options) => request("PUT", path, body, options),
  patch: (path, body = {}, options) => request("PATCH", path, body, options),
  del: (path, options) => request("DELETE", path, undefined, options),
  /** PUT a file's bytes (a Blob) as the request body. */
  upload: (path, blob, options = {}) => request("PUT", path, blob, { ...options, raw: true }),
};

/** GET a response as it comes: the reply itself, for its headers and text (a sandbox command's output). */
export async function getReply(path, { signal } = {}) {
  const reply = await fetch(path, { credentials: "same-origin", signal });
  if (!reply.ok) {
    let message = `HTTP ${reply.status}`;
    try { message = (await reply.json()).error.message; } catch { /* keep the status */ }
    throw new ApiError(reply.status, message);
  }
  return reply;
}

/** Path with query parameters, leaving out empty ones. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** Follow an NDJSON stream (logs), calling `onRecord` per line until `signal` aborts it. */
export async function followNdjson(path, onRecord, signal) {
  const reply = await fetch(path, { credentials: "same-origin", signal });
  if (!reply.ok) {
    let message = `HTTP ${reply.status}`;
    try { message = (await reply.json()).error.message; } catch { /* keep the status */ }
    throw new ApiError(reply.status, message);
  }
  const reader = reply.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += decoder.decode(value, { stream: true });
    const lines = buffered.split("\n");
    buffered = lines.pop();
    for (const line of lines) if (line.trim()) onRecord(JSON.parse(line));
  }
}
