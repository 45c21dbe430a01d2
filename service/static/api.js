// matteserve API v1 from the browser: HTTP calls and the session WebSocket.
// Every failure becomes an ApiError carrying the server's code and message, so the page
// can show it in words.

/** The API root: the folder the page was served from (the service mounts the UI at /). */
export const API_ROOT = new URL("./", window.location.href);

/** An error answered by the server ({"error": {"code", "message"}}) or a failure to reach it. */
export class ApiError extends Error {
  constructor(code, message, status = null) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
  }
}

/** Resolve a server path ("/v1/...", as results carry them, or "v1/...") against the API root. */
export function apiUrl(path) {
  return new URL(String(path).replace(/^\//, ""), API_ROOT);
}

async function errorFrom(response) {
  let code = "http_error";
  let message = `${response.status} ${response.statusText || "error"}`.trim();
  try {
    const body = await response.json();
    if (body && body.error && body.error.code) {
      code = String(body.error.code);
      message = String(body.error.message || message);
    }
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(code, message, response.status);
}

/** HTTP client holding the API key; ``request`` resolves to the Response or throws ApiError. */
export class Api {
  constructor(apiKey = "") {
    this.apiKey = apiKey;
  }

  headers(extra = {}) {
    return this.apiKey ? { ...extra, Authorization: `Bearer ${this.apiKey}` } : extra;
  }

  async request(path, { method = "GET", body, json, signal } = {}) {
    const init = { method, headers: this.headers(), signal };
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers["Content-Type"] = "application/json";
    } else if (body !== undefined) {
      init.body = body;
    }
    let response;
    try {
      response = await fetch(apiUrl(path), init);
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      throw new ApiError("unreachable", `Could not reach the server (${err && err.message ? err.message : err}).`);
    }
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  async models() {
    return (await this.request("v1/models")).json();
  }

  async createSession(file, model) {
    const form = new FormData();
    form.append("image", file, file.name || "image.png");
    form.append("model", model || "auto");
    return (await this.request("v1/sessions", { method: "POST", body: form })).json();
  }

  async blob(path) {
    return (await this.request(path)).blob();
  }

  async instances(file) {
    const form = new FormData();
    form.append("image", file, file.name || "image.png");
    return (await this.request("v1/instances", { method: "POST", body: form })).json();
  }
}

/** Close codes the server uses for fatal socket errors. */
export const CLOSE_UNAUTHORIZED = 4401;
export const CLOSE_NOT_FOUND = 4404;

/**
 * The session WebSocket. Requests are answered in order; each resolves with
 * ``{message, alpha}`` where ``alpha`` is the Blob of the binary frame that follows
 * a ``result`` (and an ``undone`` with round > 0), or rejects with ApiError.
 */
export class SessionSocket {
  constructor(sessionId, apiKey, { onState = () => {}, onFatal = () => {} } = {}) {
    this.sessionId = sessionId;
    this.apiKey = apiKey;
    this.onState = onState;
    this.onFatal = onFatal;
    this.ws = null;
    this.opening = null;
    this.waiting = []; // FIFO of {resolve, reject, kind, message, expectBinary}
    this.lastError = null;
    this.closedByUs = false;
  }

  url() {
    const url = apiUrl(`v1/sessions/${encodeURIComponent(this.sessionId)}/ws`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (this.apiKey) url.searchParams.set("api_key", this.apiKey);
    return url.href;
  }

  /** Open the socket (once) and resolve with the server's ``ready`` message. */
  open() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) return Promise.resolve(this.ready);
    if (this.opening) return this.opening;
    this.onState("connecting");
    this.opening = new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url());
      ws.binaryType = "blob";
      this.ws = ws;
      let readySeen = false;
      ws.onmessage = (event) => {
        if (!readySeen) {
          const message = typeof event.data === "string" ? safeJson(event.data) : null;
          if (message && message.type === "ready") {
            readySeen = true;
            this.ready = message;
            this.onState("open");
            resolve(message);
          } else if (message && message.type === "error") {
            this.lastError = new ApiError(message.error.code, message.error.message);
          }
          return;
        }
        this.dispatch(event.data);
      };
      ws.onerror = () => {
        /* the close event follows with the details */
      };
      ws.onclose = (event) => {
        this.opening = null;
        this.onState("closed");
        const error = closeError(event, this.lastError);
        this.lastError = null;
        if (!readySeen) reject(error);
        for (const pending of this.waiting.splice(0)) pending.reject(error);
        if (!this.closedByUs && (event.code === CLOSE_UNAUTHORIZED || event.code === CLOSE_NOT_FOUND)) {
          this.onFatal(error, event.code);
        }
      };
    }).finally(() => {
      this.opening = null;
    });
    return this.opening;
  }

  dispatch(data) {
    const head = this.waiting[0];
    if (typeof data !== "string") {
      if (head && head.message && head.expectBinary) {
        this.waiting.shift();
        head.resolve({ message: head.message, alpha: data });
      }
      return;
    }
    const message = safeJson(data);
    if (!message || !head) return;
    if (message.type === "pong") {
      if (head.kind === "ping") this.waiting.shift().resolve({ message });
      return;
    }
    if (message.type === "error") {
      const error = new ApiError(message.error.code, message.error.message);
      this.lastError = error;
      this.waiting.shift();
      head.reject(error);
      return;
    }
    if (message.type === "result" || message.type === "undone") {
      const needsBinary = message.type === "result" || message.round > 0;
      if (needsBinary) {
        head.message = message;
        head.expectBinary = true;
      } else {
        this.waiting.shift();
        head.resolve({ message, alpha: null });
      }
    }
  }

  async send(payload) {
    await this.open();
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject, kind: payload.type, message: null, expectBinary: false });
      this.ws.send(JSON.stringify(payload));
    });
  }

  /** Run one round with the new ``prompts``. */
  round(prompts, model, requestId) {
    const payload = { type: "round", prompts };
    if (model) payload.model = model;
    if (requestId) payload.request_id = requestId;
    return this.send(payload);
  }

  undo() {
    return this.send({ type: "undo" });
  }

  close() {
    this.closedByUs = true;
    if (this.ws) this.ws.close(1000);
  }
}

function closeError(event, serverError) {
  const status = { [CLOSE_UNAUTHORIZED]: 401, [CLOSE_NOT_FOUND]: 404 }[event.code];
  if (serverError && status) {
    // the server said why before closing: keep its words
    return new ApiError(serverError.code, serverError.message, status);
  }
  if (event.code === CLOSE_UNAUTHORIZED) {
    return new ApiError("unauthorized", "The server refused the API key on the live connection.", 401);
  }
  if (event.code === CLOSE_NOT_FOUND) {
    return new ApiError(
      "session_not_found",
      "This session no longer exists on the server (it may have expired). Open the image again to start over.",
      404,
    );
  }
  const why = event.reason ? `: ${event.reason}` : "";
  return new ApiError("connection_lost", `The live connection to the server closed (code ${event.code}${why}).`);
}

function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** A request id unique enough to make a retried round safe. */
export function requestId() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
  return `r-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}
