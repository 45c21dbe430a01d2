// matteserve web UI: open a photo, mark the target, refine over rounds on the session
// WebSocket, see the matte as an overlay and the cut-out on a checkerboard, download both.
// Plain ES modules, no build step, no dependencies.

import { Api, ApiError, CLOSE_UNAUTHORIZED, CLOSE_NOT_FOUND, SessionSocket, apiUrl, requestId } from "./api.js";
import {
  INSTANCE_COLOURS,
  canvasBlob,
  drawBrushCursor,
  drawGesture,
  drawMarks,
  instancesOverlay,
  makeCanvas,
  tintOverlay,
} from "./render.js";

const KEY_STORAGE = "matteserve.apiKey";
const TOOLS = ["click-fg", "click-bg", "scribble-fg", "scribble-bg", "box"];
const TOOL_HINTS = {
  "click-fg": "— click on the target",
  "click-bg": "— click on what is not the target",
  "scribble-fg": "— paint over the target",
  "scribble-bg": "— paint over what is not the target",
  box: "— drag a box around the target",
};
const MAX_SCRIBBLE_POINTS = 4096;
const MAX_UPSCALE = 3;

const $ = (id) => document.getElementById(id);
const el = {
  app: $("app"),
  modelSelect: $("model-select"),
  modelNote: $("model-note"),
  keyForm: $("key-form"),
  apiKey: $("api-key"),
  fileInput: $("file-input"),
  brush: $("brush-size"),
  brushValue: $("brush-value"),
  textForm: $("text-form"),
  textPrompt: $("text-prompt"),
  refine: $("refine-btn"),
  undo: $("undo-btn"),
  autoSend: $("auto-send"),
  pendingNote: $("pending-note"),
  people: $("people-btn"),
  instanceList: $("instance-list"),
  peopleNote: $("people-note"),
  showOverlay: $("show-overlay"),
  showMarks: $("show-marks"),
  strength: $("overlay-strength"),
  downloadAlpha: $("download-alpha"),
  downloadCutout: $("download-cutout"),
  error: $("error"),
  errorMessage: $("error-message"),
  errorCode: $("error-code"),
  errorAction: $("error-action"),
  errorClose: $("error-close"),
  dropzone: $("dropzone"),
  panes: $("panes"),
  canvasBox: $("canvas-box"),
  view: $("view-canvas"),
  ink: $("ink-canvas"),
  cutoutImg: $("cutout-img"),
  cutoutEmpty: $("cutout-empty"),
  roundCount: $("round-count"),
  roundPill: $("round-pill"),
  toolHint: $("tool-hint"),
  statModel: $("stat-model"),
  usedModel: $("used-model"),
  statScore: $("stat-score"),
  score: $("score"),
  statLatency: $("stat-latency"),
  latencyServer: $("latency-server"),
  latencyRtt: $("latency-rtt"),
  activity: $("activity"),
  conn: $("conn"),
  connText: $("conn-text"),
};

function storedKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

const state = {
  api: new Api(storedKey()),
  models: [],
  model: "auto",
  file: null,
  baseName: "image",
  bitmap: null,
  width: 0,
  height: 0,
  sessionId: null,
  socket: null,
  generation: 0, // bumps with every new session; stale answers are dropped
  opening: 0, // bumps with every photo opened; a superseded upload is dropped
  tool: "click-fg",
  history: [], // history[k - 1]: the marks sent in round k
  pending: [], // marks drawn but not sent yet
  inflight: null, // {kind: "round" | "undo", prompts}
  unsent: null, // {id, prompts}: a round whose answer never came; resent with its request id (applied once)
  results: [], // results[k - 1]: round k's result message, for the status bar after an undo
  undoQueued: 0, // undos asked for and not sent yet
  held: false, // after a failed round, auto-send waits for the user (a new mark, Refine or Retry)
  refineQueued: false,
  current: null, // {round, result, alphaBlob, alphaImage, cutoutBlob, cutoutPromise}
  instances: null, // {items: [{id, score, box, colour, enabled, image, blob}]}
  view: "session", // or "instances"
  overlay: null, // canvas at the view canvas's backing size
  gesture: null,
  hover: null,
  layout: { scale: 1, cssW: 0, cssH: 0, dpr: 1 },
  busy: 0,
  cutoutUrl: null,
  instanceCutout: null, // {alphaBlob, cutoutBlob} for the people view
};

// ------------------------------------------------------------------ errors and status
function showError(err, action = null) {
  const error = err instanceof ApiError ? err : new ApiError("client_error", String((err && err.message) || err));
  console.error("matteserve:", error.code, error.message);
  el.errorMessage.textContent = error.message;
  el.errorCode.textContent = `(${error.code}${error.status ? `, HTTP ${error.status}` : ""})`;
  el.error.dataset.code = error.code;
  if (action) {
    el.errorAction.textContent = action.label;
    el.errorAction.onclick = () => {
      clearError();
      action.run();
    };
    el.errorAction.hidden = false;
  } else {
    el.errorAction.hidden = true;
  }
  el.error.hidden = false;
  if (error.status === 401 || error.code === "unauthorized" || error.code === "invalid_api_key") {
    showKeyForm();
  }
}

function clearError() {
  el.error.hidden = true;
  delete el.error.dataset.code;
}

function setActivity(text) {
  el.activity.textContent = text || "";
}

async function busy(text, work) {
  state.busy += 1;
  el.app.dataset.state = "busy";
  setActivity(text);
  updateControls();
  try {
    return await work();
  } finally {
    state.busy -= 1;
    if (state.busy === 0) {
      el.app.dataset.state = state.sessionId ? "ready" : "idle";
      setActivity("");
    }
    updateControls();
  }
}

function setConnection(kind) {
  el.conn.dataset.conn = kind;
  el.connText.textContent =
    { open: "live", connecting: "connecting…", closed: "disconnected", none: "no session" }[kind] || kind;
}

/** Show the current round (also as ``data-round`` on #app, which tests wait on). */
function setRound(n) {
  el.roundCount.textContent = String(n);
  el.roundPill.textContent = String(n);
  el.app.dataset.round = String(n);
}

function fmtMs(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "–";
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

// ------------------------------------------------------------------ API key and models
function showKeyForm() {
  el.keyForm.hidden = false;
  if (document.activeElement !== el.apiKey) el.apiKey.focus();
}

async function loadModels() {
  try {
    const answer = await state.api.models();
    state.models = answer.models || [];
    fillModelSelect(answer);
    el.keyForm.hidden = !state.api.apiKey;
    if (!state.sessionId) el.app.dataset.state = "idle";
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      showKeyForm();
      el.app.dataset.state = "needs-key";
      if (state.api.apiKey) showError(err);
      else setActivity("This server needs an API key.");
    } else {
      showError(err);
    }
    return false;
  }
}

function fillModelSelect(answer) {
  const previous = el.modelSelect.value || "auto";
  el.modelSelect.replaceChildren();
  const auto = document.createElement("option");
  auto.value = "auto";
  const autoPicks = Object.entries(answer.auto || {})
    .map(([kind, name]) => `${kind} → ${name}`)
    .join(", ");
  auto.textContent = "auto — best for your marks";
  auto.title = autoPicks ? `auto picks: ${autoPicks}` : "The server picks the pipeline per prompt kind.";
  el.modelSelect.append(auto);
  for (const model of state.models) {
    const option = document.createElement("option");
    option.value = model.name;
    const flags = [];
    if (!model.trained) flags.push("untrained");
    if (!model.ready) flags.push("not ready");
    option.textContent = flags.length ? `${model.name} — ${flags.join(", ")}` : model.name;
    option.dataset.trained = String(model.trained);
    option.dataset.ready = String(model.ready);
    option.title = `${model.description} · prompts: ${model.prompt_kinds.join(", ") || "none"}`;
    el.modelSelect.append(option);
  }
  el.modelSelect.value = [...el.modelSelect.options].some((o) => o.value === previous) ? previous : "auto";
  const people = answer.instances;
  let peopleNote = "";
  if (people && !people.ready) peopleNote = "Finding people is not ready on this server.";
  else if (people && !people.trained) peopleNote = "Finding people runs on untrained weights: expect rough mattes.";
  el.peopleNote.textContent = peopleNote;
  el.peopleNote.hidden = !peopleNote;
  state.model = el.modelSelect.value;
  updateModelNote();
}

function updateModelNote() {
  const model = state.models.find((m) => m.name === state.model);
  let note = "";
  if (model && !model.trained) note = "untrained weights: expect rough mattes";
  if (model && !model.ready) note = `not ready${model.detail ? `: ${model.detail}` : ""}`;
  el.modelNote.textContent = note;
  el.modelNote.hidden = !note;
}

// ------------------------------------------------------------------ images and sessions
async function openFile(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    showError(new ApiError("not_an_image", `“${file.name}” is not an image; open a PNG, JPEG or WebP photo.`));
    return;
  }
  clearError();
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    showError(new ApiError("undecodable_image", `This browser cannot display “${file.name || "the image"}”.`));
    return;
  }
  await startSession(file, bitmap);
}

function resetRounds() {
  state.history = [];
  state.pending = [];
  state.inflight = null;
  state.unsent = null;
  state.results = [];
  state.undoQueued = 0;
  state.held = false;
  state.refineQueued = false;
  state.current = null;
  state.instances = null;
  state.instanceCutout = null;
  state.view = "session";
  state.overlay = null;
  state.gesture = null;
  el.instanceList.hidden = true;
  el.instanceList.replaceChildren();
  setRound(0);
  el.app.dataset.view = "session";
  delete el.app.dataset.cutoutRound;
  el.statModel.hidden = el.statScore.hidden = el.statLatency.hidden = true;
  showCutout(null);
}

/**
 * Start a session on ``file`` (shown as ``bitmap``). The current session and photo stay until the
 * new session exists: a file the server refuses (413, 415, 400) must not cost the user their work.
 */
async function startSession(file = state.file, bitmap = state.bitmap) {
  // The current session lives on (its rounds and socket) until the new one exists.
  const opening = ++state.opening;
  try {
    await busy("Uploading and computing image features…", async () => {
      const created = await state.api.createSession(file, state.model);
      if (opening !== state.opening) {
        // a newer photo was opened meanwhile: this session is nobody's
        state.api.request(`v1/sessions/${encodeURIComponent(created.session_id)}`, { method: "DELETE" }).catch(() => {});
        return;
      }
      const generation = ++state.generation;
      if (state.socket) state.socket.close();
      if (state.sessionId) {
        const old = state.sessionId;
        state.api.request(`v1/sessions/${encodeURIComponent(old)}`, { method: "DELETE" }).catch(() => {});
      }
      if (state.bitmap && state.bitmap !== bitmap) state.bitmap.close();
      state.file = file;
      state.bitmap = bitmap;
      state.baseName = (file.name || "image").replace(/\.[^.]+$/, "") || "image";
      state.socket = null;
      resetRounds();
      state.sessionId = created.session_id;
      state.width = created.width;
      state.height = created.height;
      el.app.dataset.session = created.session_id;
      el.dropzone.hidden = true;
      el.panes.hidden = false;
      layout();
      setConnection("connecting");
      state.socket = new SessionSocket(created.session_id, state.api.apiKey, {
        onState: (kind) => generation === state.generation && setConnection(kind),
        onFatal: (error, code) => generation === state.generation && onFatalSocket(error, code),
      });
      await state.socket.open();
    });
  } catch (err) {
    if (opening !== state.opening) return;
    if (!state.sessionId) setConnection("none");
    else if (state.socket && file === state.file) setConnection("closed");
    // a refusal of the file itself would only be refused again: no "Try again" for it
    const refused = err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429;
    if (refused && bitmap !== state.bitmap) bitmap.close();
    showError(err, refused ? null : { label: "Try again", run: () => startSession(file, bitmap) });
  }
  updateControls();
}

function onFatalSocket(error, code) {
  if (code === CLOSE_NOT_FOUND) {
    showError(error, { label: "Start a new session", run: () => startSession() });
  } else if (code === CLOSE_UNAUTHORIZED) {
    showError(error);
  }
}

// ------------------------------------------------------------------ rounds
function addMark(prompt) {
  clearError();
  state.held = false;
  state.pending.push(prompt);
  switchView("session");
  drawInk();
  updateControls();
  if (el.autoSend.checked) flush();
}

function requestRefine() {
  if (!state.sessionId) return;
  clearError();
  state.held = false;
  state.refineQueued = true;
  switchView("session");
  flush();
}

function requestUndo() {
  if (!state.sessionId) return;
  clearError();
  if (state.pending.length) {
    state.pending.pop();
    drawInk();
    updateControls();
    return;
  }
  // A kept round may already be applied on the server: it is settled first (resent with its
  // request_id, applied once), then this undo takes it back.
  const kept = state.unsent ? 1 : 0;
  const shown =
    (state.inflight && state.inflight.kind === "round" ? state.history.length + 1 : state.history.length) + kept;
  const rounds = Math.max(shown, state.current ? state.current.round : 0);
  if (state.undoQueued < rounds) {
    state.undoQueued += 1; // each press undoes one round, however fast they come
    switchView("session");
    flush();
  }
}

/** Send what is queued when nothing is in flight: an undo, or the pending marks as one round. */
function flush() {
  if (!state.socket || state.inflight) return;
  const auto = el.autoSend.checked && !state.held;
  if (state.unsent && (auto || state.refineQueued || state.undoQueued > 0)) {
    const { id, prompts } = state.unsent; // first, alone: its request id applies it at most once
    state.unsent = null;
    state.refineQueued = false; // this is the Refine asked for, not a re-run after it
    runRound(prompts, id, true);
    return;
  }
  if (state.undoQueued > 0) {
    state.undoQueued -= 1;
    runUndo();
    return;
  }
  const send = state.pending.length && (auto || state.refineQueued);
  const rerun = state.refineQueued && !state.pending.length && state.history.length;
  state.refineQueued = false;
  if (send || rerun) runRound(state.pending.splice(0));
}

const SLOW_ROUND_S = 20; // after this long without an answer the activity line says so

// Errors after which the server applied nothing and the same round may succeed later.
const NOT_APPLIED_RETRYABLE = new Set([
  "server_busy",
  "backend_unavailable",
  "model_not_ready",
  "store_unavailable",
  "rate_limited",
  "session_busy",
]);

/**
 * Make ``entry`` round ``n``'s in ``list`` (index n - 1), dropping later rounds; rounds this page
 * did not see (applied by another client, or before a lost answer) get ``missing``, never a hole.
 */
function setRoundEntry(list, n, entry, missing) {
  list.length = Math.min(list.length, n - 1);
  while (list.length < n - 1) list.push(missing);
  list.push(entry);
}

/** Send ``prompts`` as one round; ``settling``: a kept round resent with its own ``id``. */
async function runRound(prompts, id = requestId(), settling = false) {
  const generation = state.generation;
  state.inflight = { kind: "round", prompts };
  drawInk();
  const started = performance.now();
  try {
    const label = `Computing round ${state.history.length + 1}…`;
    await busy(label, async () => {
      // a stalled server: say so rather than spin silently (the answer is still awaited)
      const slow = setTimeout(() => {
        if (generation === state.generation && state.inflight && state.inflight.prompts === prompts) {
          setActivity(`${label} the server has not answered for ${SLOW_ROUND_S} s; still waiting.`);
        }
      }, SLOW_ROUND_S * 1000);
      let answer;
      try {
        answer = await state.socket.round(prompts, state.model, id);
      } catch (err) {
        // the socket dropped mid-round: reconnect and resend once with the same request id,
        // which the server answers from the stored round if it had already applied it
        if (!(err instanceof ApiError) || err.code !== "connection_lost") throw err;
        answer = await state.socket.round(prompts, state.model, id);
      } finally {
        clearTimeout(slow);
      }
      const { message, alpha } = answer;
      const roundTrip = performance.now() - started;
      if (generation !== state.generation) return;
      setRoundEntry(state.history, message.round, prompts, []);
      setRoundEntry(state.results, message.round, message, null);
      await showRound(message.round, alpha, message);
      el.latencyServer.textContent = fmtMs(message.timings_ms && message.timings_ms.total);
      el.latencyRtt.textContent = fmtMs(roundTrip);
      el.statLatency.hidden = false;
      const text = prompts.find((p) => p.type === "text");
      if (text && el.textPrompt.value.trim() === text.text) el.textPrompt.value = "";
    });
  } catch (err) {
    if (generation !== state.generation) return;
    state.held = true; // no automatic resend: a server that is down would be asked again and again
    state.undoQueued = 0; // an undo waiting on this round is asked for again by the user
    const kept = keepUnapplied(prompts, id, err, settling);
    const retry = () => (state.unsent || state.pending.length) && requestRefine();
    showError(kept, state.unsent || state.pending.length ? { label: "Retry", run: retry } : null);
  } finally {
    if (generation === state.generation) {
      state.inflight = null;
      drawInk();
      updateControls();
      flush();
    }
  }
}

/**
 * A round that failed keeps its marks unless the server refused them: when its answer never came
 * (the connection dropped, or Redis failed while saving it) they wait with their request id, so
 * that resending applies them at most once; when the server was busy or unavailable they go back
 * to the pending marks. Either way the next Refine (or mark, with auto-send) sends them again.
 */
function keepUnapplied(prompts, id, err, settling) {
  const code = err instanceof ApiError ? err.code : "";
  // a kept round stays kept with its id through a busy server: it may be applied already
  const unknown = code === "connection_lost" || code === "round_outcome_unknown";
  if (unknown || (settling && NOT_APPLIED_RETRYABLE.has(code))) {
    state.unsent = { id, prompts };
    if (code === "connection_lost") {
      return new ApiError(
        code,
        "The connection to the server was lost before this round's answer came. Your marks are kept: " +
          "press Retry (or Refine) once the server is back.",
      );
    }
  } else if (NOT_APPLIED_RETRYABLE.has(code)) {
    state.pending.unshift(...prompts);
  }
  return err;
}

async function runUndo() {
  const generation = state.generation;
  state.inflight = { kind: "undo", prompts: [] };
  try {
    await busy("Undoing…", async () => {
      const { message, alpha } = await state.socket.undo();
      if (generation !== state.generation) return;
      state.history.length = Math.min(state.history.length, message.round);
      state.results.length = Math.min(state.results.length, message.round);
      if (message.round > 0) {
        await showRound(message.round, alpha, state.results[message.round - 1] || null);
      } else {
        state.current = null;
        state.overlay = null;
        setRound(0);
        el.statModel.hidden = el.statScore.hidden = true;
        showCutout(null);
        drawView();
      }
    });
  } catch (err) {
    if (generation !== state.generation) return;
    showError(err);
  } finally {
    if (generation === state.generation) {
      state.inflight = null;
      drawInk();
      updateControls();
      flush();
    }
  }
}

/** Make round ``n`` (its alpha PNG blob, and its result message when there is one) current. */
async function showRound(n, alphaBlob, result) {
  const alphaImage = await createImageBitmap(alphaBlob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  if (state.current && state.current.alphaImage) state.current.alphaImage.close();
  const current = { round: n, result, alphaBlob, alphaImage, cutoutBlob: null, cutoutPromise: null };
  state.current = current;
  if (result) {
    el.usedModel.textContent = result.model;
    el.statModel.hidden = false;
    el.score.textContent = result.score === null || result.score === undefined ? "–" : result.score.toFixed(2);
    el.statScore.hidden = result.score === null || result.score === undefined;
    el.latencyServer.textContent = fmtMs(result.timings_ms && result.timings_ms.total);
  } else {
    // a round this page did not compute (an undo back past a reload): nothing stale about it
    el.statModel.hidden = el.statScore.hidden = el.statLatency.hidden = true;
  }
  buildOverlay();
  drawView();
  setRound(n);
  const url = result ? result.cutout_url : `/v1/sessions/${encodeURIComponent(state.sessionId)}/rounds/${n}/cutout.png`;
  current.cutoutPromise = loadCutout(current, url);
}

async function loadCutout(current, url) {
  try {
    const blob = await state.api.blob(url);
    current.cutoutBlob = blob;
    if (state.current === current && state.view === "session") {
      showCutout(blob);
      el.app.dataset.cutoutRound = String(current.round);
    }
    return blob;
  } catch (err) {
    // an undo queued or under way may already have dropped this round on the server
    const undoing = state.undoQueued > 0 || (state.inflight && state.inflight.kind === "undo");
    if (state.current === current && !(undoing && err instanceof ApiError && err.code === "round_not_found")) {
      showError(err);
    }
    return null;
  }
}

function showCutout(blob) {
  if (state.cutoutUrl) URL.revokeObjectURL(state.cutoutUrl);
  state.cutoutUrl = null;
  if (!blob) {
    el.cutoutImg.hidden = true;
    el.cutoutImg.removeAttribute("src");
    el.cutoutEmpty.hidden = false;
    return;
  }
  state.cutoutUrl = URL.createObjectURL(blob);
  el.cutoutImg.src = state.cutoutUrl;
  el.cutoutImg.hidden = false;
  el.cutoutEmpty.hidden = true;
}

// ------------------------------------------------------------------ people (instances)
async function findPeople() {
  if (!state.file) {
    showError(new ApiError("no_image", "Open a photo first, then ask for all people."));
    return;
  }
  clearError();
  const generation = state.generation;
  try {
    const started = performance.now();
    await busy("Finding every person…", async () => {
      const answer = await state.api.instances(state.file);
      const roundTrip = performance.now() - started;
      if (generation !== state.generation) return;
      const items = await Promise.all(
        (answer.instances || []).map(async (inst, i) => {
          const bytes = Uint8Array.from(atob(inst.alpha_png_base64), (c) => c.charCodeAt(0));
          const blob = new Blob([bytes], { type: "image/png" });
          const image = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
          return { ...inst, blob, image, enabled: true, colour: INSTANCE_COLOURS[i % INSTANCE_COLOURS.length] };
        }),
      );
      state.instances = { items, timings: answer.timings_ms || {} };
      renderInstanceList();
      switchView(items.length ? "instances" : "session");
      el.latencyServer.textContent = fmtMs(answer.timings_ms && answer.timings_ms.total);
      el.latencyRtt.textContent = fmtMs(roundTrip);
      el.statLatency.hidden = false;
    });
    if (generation === state.generation && state.instances) {
      const n = state.instances.items.length;
      setActivity(n ? `${n} ${n === 1 ? "person" : "people"} found.` : "No people found.");
    }
  } catch (err) {
    if (generation === state.generation) showError(err);
  }
}

function renderInstanceList() {
  const list = el.instanceList;
  list.replaceChildren();
  list.hidden = false;
  const items = state.instances ? state.instances.items : [];
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "No people found in this photo.";
    list.append(li);
    return;
  }
  items.forEach((inst, i) => {
    const li = document.createElement("li");
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = inst.enabled;
    box.dataset.instance = String(inst.id);
    box.addEventListener("change", () => {
      inst.enabled = box.checked;
      switchView("instances", true);
    });
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${inst.colour.join(",")})`;
    const name = document.createElement("span");
    name.textContent = `Person ${i + 1}`;
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = `${Math.round(inst.score * 100)}%`;
    label.append(box, swatch, name, score);
    const refine = document.createElement("button");
    refine.type = "button";
    refine.className = "btn small ghost";
    refine.textContent = "Refine";
    refine.title = `Use person ${i + 1}'s box as a prompt and refine interactively`;
    refine.setAttribute("aria-label", `Refine person ${i + 1} interactively`);
    refine.addEventListener("click", () => {
      const [x0, y0, x1, y1] = inst.box;
      addMark({ type: "box", x0, y0, x1: Math.min(x1, state.width), y1: Math.min(y1, state.height) });
    });
    li.append(label, refine);
    list.append(li);
  });
}

function switchView(view, force = false) {
  if (view === state.view && !force) return;
  if (view === "instances" && !state.instances) return;
  state.view = view;
  el.app.dataset.view = view;
  buildOverlay();
  drawView();
  drawInk();
  if (view === "session") {
    showCutout(state.current && state.current.cutoutBlob);
  } else {
    composeInstanceCutout();
  }
  updateControls();
}

function enabledInstances() {
  return state.instances ? state.instances.items.filter((inst) => inst.enabled) : [];
}

/** The people view's alpha (max over enabled instances) and cut-out, composed in the page. */
async function composeInstanceCutout() {
  const items = enabledInstances();
  if (!items.length || !state.bitmap) {
    state.instanceCutout = null;
    showCutout(null);
    return;
  }
  const { width, height } = state;
  const mask = makeCanvas(width, height);
  const m = mask.getContext("2d", { willReadFrequently: true });
  m.fillStyle = "#000";
  m.fillRect(0, 0, width, height);
  m.globalCompositeOperation = "lighten";
  for (const inst of items) m.drawImage(inst.image, 0, 0, width, height);
  const alphaBlob = await canvasBlob(mask);
  const pixels = m.getImageData(0, 0, width, height);
  const d = pixels.data;
  for (let i = 0; i < d.length; i += 4) {
    d[i + 3] = d[i];
  }
  m.putImageData(pixels, 0, 0);
  const out = makeCanvas(width, height);
  const o = out.getContext("2d");
  o.drawImage(state.bitmap, 0, 0, width, height);
  o.globalCompositeOperation = "destination-in";
  o.drawImage(mask, 0, 0);
  const cutoutBlob = await canvasBlob(out);
  state.instanceCutout = { alphaBlob, cutoutBlob };
  if (state.view === "instances") showCutout(cutoutBlob);
  updateControls();
}

// ------------------------------------------------------------------ canvases
function layout() {
  if (!state.width || !state.height) return;
  const box = el.canvasBox;
  const style = getComputedStyle(box);
  const padX = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
  const padY = parseFloat(style.paddingTop) + parseFloat(style.paddingBottom);
  const availW = Math.max(50, box.clientWidth - padX);
  const availH = Math.max(50, box.clientHeight - padY);
  const scale = Math.min(availW / state.width, availH / state.height, MAX_UPSCALE);
  const cssW = Math.max(1, Math.floor(state.width * scale));
  const cssH = Math.max(1, Math.floor(state.height * scale));
  const dpr = Math.min(window.devicePixelRatio || 1, 3);
  state.layout = { scale: cssW / state.width, cssW, cssH, dpr };
  for (const canvas of [el.view, el.ink]) {
    canvas.style.width = `${cssW}px`;
    canvas.style.height = `${cssH}px`;
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
  }
  el.cutoutImg.style.width = `${cssW}px`;
  el.cutoutImg.style.height = `${cssH}px`;
  buildOverlay();
  drawView();
  drawInk();
}

function buildOverlay() {
  const { width, height } = el.view;
  const strength = Number(el.strength.value) / 100;
  if (state.view === "instances") {
    const items = enabledInstances();
    state.overlay = items.length ? instancesOverlay(items, width, height, strength) : null;
  } else {
    state.overlay = state.current ? tintOverlay(state.current.alphaImage, width, height, strength) : null;
  }
}

function drawView() {
  const ctx = el.view.getContext("2d");
  ctx.clearRect(0, 0, el.view.width, el.view.height);
  if (!state.bitmap) return;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(state.bitmap, 0, 0, el.view.width, el.view.height);
  if (state.overlay && el.showOverlay.checked) ctx.drawImage(state.overlay, 0, 0);
}

/** Image pixel -> backing-store pixel of the canvases. */
function toCanvas(x, y) {
  return [(x * el.ink.width) / state.width, (y * el.ink.height) / state.height];
}

function drawInk() {
  const ctx = el.ink.getContext("2d");
  ctx.clearRect(0, 0, el.ink.width, el.ink.height);
  if (!state.width) return;
  const px = el.ink.width / state.width; // backing pixels per image pixel
  const dpr = state.layout.dpr;
  if (el.showMarks.checked && state.view === "session") {
    for (const prompts of state.history) drawMarks(ctx, prompts, toCanvas, px, dpr, "sent");
    if (state.inflight) drawMarks(ctx, state.inflight.prompts, toCanvas, px, dpr, "inflight");
    if (state.unsent) drawMarks(ctx, state.unsent.prompts, toCanvas, px, dpr, "pending");
    drawMarks(ctx, state.pending, toCanvas, px, dpr, "pending");
  }
  if (state.gesture) drawGesture(ctx, state.gesture, toCanvas, px, dpr, brushRadius());
  else if (state.hover && state.tool.startsWith("scribble")) {
    drawBrushCursor(ctx, state.hover, toCanvas, px, dpr, brushRadius(), state.tool.endsWith("bg") ? "bg" : "fg");
  }
}

// ------------------------------------------------------------------ pointer input (mouse, pen, touch)
function brushRadius() {
  // the slider is the brush's diameter in screen pixels; prompts carry a radius in image pixels
  return Math.max(1, Number(el.brush.value) / 2 / state.layout.scale);
}

function toImage(event) {
  const rect = el.ink.getBoundingClientRect();
  const x = ((event.clientX - rect.left) / rect.width) * state.width;
  const y = ((event.clientY - rect.top) / rect.height) * state.height;
  const clamp = (v, hi) => Math.round(Math.min(Math.max(v, 0), hi) * 10) / 10;
  return [clamp(x, state.width), clamp(y, state.height)];
}

function canDraw() {
  return Boolean(state.sessionId && state.bitmap);
}

el.ink.addEventListener("pointerdown", (event) => {
  if (!canDraw()) return;
  if (event.pointerType === "mouse" && event.button !== 0) return;
  if (state.gesture) {
    // a second finger: treat as a cancelled gesture rather than a mark
    state.gesture = null;
    drawInk();
    return;
  }
  event.preventDefault();
  el.ink.focus({ preventScroll: true }); // so that Enter (Refine) and the shortcuts reach the page
  el.ink.setPointerCapture(event.pointerId);
  const point = toImage(event);
  state.gesture = { tool: state.tool, pointerId: event.pointerId, start: point, last: point, points: [point] };
  drawInk();
});

el.ink.addEventListener("pointermove", (event) => {
  const gesture = state.gesture;
  if (!gesture || gesture.pointerId !== event.pointerId) {
    if (event.pointerType === "mouse" && canDraw()) {
      state.hover = toImage(event);
      drawInk();
    }
    return;
  }
  const events = typeof event.getCoalescedEvents === "function" ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) {
    const point = toImage(e);
    gesture.last = point;
    if (gesture.tool.startsWith("scribble")) {
      const prev = gesture.points[gesture.points.length - 1];
      const minStep = 1.5 / state.layout.scale; // ~1.5 screen pixels between samples
      if (Math.hypot(point[0] - prev[0], point[1] - prev[1]) >= minStep) gesture.points.push(point);
    }
  }
  state.hover = gesture.last;
  drawInk();
});

el.ink.addEventListener("pointerup", (event) => {
  const gesture = state.gesture;
  if (!gesture || gesture.pointerId !== event.pointerId) return;
  state.gesture = null;
  finishGesture(gesture, toImage(event));
});

el.ink.addEventListener("pointercancel", () => {
  state.gesture = null;
  drawInk();
});

el.ink.addEventListener("pointerleave", (event) => {
  if (event.pointerType === "mouse" && !state.gesture) {
    state.hover = null;
    drawInk();
  }
});

function finishGesture(gesture, end) {
  const label = gesture.tool.endsWith("bg") ? "bg" : "fg";
  if (gesture.tool.startsWith("click")) {
    const [x, y] = gesture.start;
    addMark({ type: "click", x, y, label });
  } else if (gesture.tool.startsWith("scribble")) {
    let points = gesture.points;
    const last = points[points.length - 1];
    if (end[0] !== last[0] || end[1] !== last[1]) points.push(end);
    if (points.length === 1) points = [points[0], points[0]];
    if (points.length > MAX_SCRIBBLE_POINTS) {
      const step = points.length / MAX_SCRIBBLE_POINTS;
      points = Array.from({ length: MAX_SCRIBBLE_POINTS }, (_, i) => points[Math.floor(i * step)]);
    }
    const radius = Math.round(brushRadius() * 10) / 10;
    addMark({ type: "scribble", points, label, radius });
  } else if (gesture.tool === "box") {
    const [ax, ay] = gesture.start;
    const [bx, by] = end;
    const x0 = Math.min(ax, bx);
    const x1 = Math.max(ax, bx);
    const y0 = Math.min(ay, by);
    const y1 = Math.max(ay, by);
    const tooSmall = (x1 - x0) * state.layout.scale < 6 || (y1 - y0) * state.layout.scale < 6;
    if (tooSmall) {
      setActivity("Drag to draw a box around the target.");
      drawInk();
      return;
    }
    addMark({ type: "box", x0, y0, x1, y1 });
  }
}

// ------------------------------------------------------------------ downloads
function downloadBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.rel = "noopener";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}

async function downloadAlpha() {
  if (state.view === "instances" && state.instanceCutout) {
    downloadBlob(state.instanceCutout.alphaBlob, `${state.baseName}-people-alpha.png`);
  } else if (state.current) {
    downloadBlob(state.current.alphaBlob, `${state.baseName}-round${state.current.round}-alpha.png`);
  }
}

async function downloadCutout() {
  if (state.view === "instances" && state.instanceCutout) {
    downloadBlob(state.instanceCutout.cutoutBlob, `${state.baseName}-people-cutout.png`);
    return;
  }
  const current = state.current;
  if (!current) return;
  const blob = current.cutoutBlob || (await current.cutoutPromise);
  if (blob) downloadBlob(blob, `${state.baseName}-round${current.round}-cutout.png`);
}

// ------------------------------------------------------------------ controls
function selectTool(tool) {
  if (!TOOLS.includes(tool)) return;
  state.tool = tool;
  el.app.dataset.activeTool = tool;
  el.toolHint.textContent = TOOL_HINTS[tool];
  for (const button of document.querySelectorAll(".tool")) {
    button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
  }
  drawInk();
}

function updateControls() {
  const session = Boolean(state.sessionId);
  const rounds = state.history.length || (state.current ? state.current.round : 0);
  const unsent = state.pending.length + (state.unsent ? state.unsent.prompts.length : 0);
  el.refine.disabled = !session || (!unsent && !rounds);
  el.undo.disabled = !session || (!unsent && !rounds);
  el.people.disabled = !state.file;
  el.textPrompt.disabled = !session;
  el.textForm.querySelector("button").disabled = !session;
  const instancesView = state.view === "instances";
  const haveResult = instancesView ? Boolean(state.instanceCutout) : Boolean(state.current);
  el.downloadAlpha.disabled = !haveResult;
  el.downloadCutout.disabled = !haveResult;
  el.pendingNote.hidden = !unsent || el.autoSend.checked;
  el.pendingNote.textContent = `${unsent} mark${unsent === 1 ? "" : "s"} not sent yet — press Refine (Enter).`;
}

for (const button of document.querySelectorAll(".tool")) {
  button.addEventListener("click", () => selectTool(button.dataset.tool));
}

el.brush.addEventListener("input", () => {
  el.brushValue.textContent = el.brush.value;
  drawInk();
});
el.strength.addEventListener("input", () => {
  buildOverlay();
  drawView();
});
el.showOverlay.addEventListener("change", drawView);
el.showMarks.addEventListener("change", drawInk);
el.autoSend.addEventListener("change", () => {
  updateControls();
  if (el.autoSend.checked) flush();
});
el.refine.addEventListener("click", requestRefine);
el.undo.addEventListener("click", requestUndo);
el.people.addEventListener("click", findPeople);
el.downloadAlpha.addEventListener("click", downloadAlpha);
el.downloadCutout.addEventListener("click", downloadCutout);
el.errorClose.addEventListener("click", clearError);

el.modelSelect.addEventListener("change", () => {
  state.model = el.modelSelect.value;
  updateModelNote();
  if (state.history.length) setActivity(`Press Refine to re-run with ${state.model}.`);
});

el.textForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = el.textPrompt.value.trim();
  if (!text || !state.sessionId) return;
  state.pending.push({ type: "text", text });
  requestRefine();
});

el.keyForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = el.apiKey.value.trim();
  if (!key) return;
  state.api.apiKey = key;
  try {
    sessionStorage.setItem(KEY_STORAGE, key);
  } catch {
    /* storage may be off: keep the key in memory only */
  }
  clearError();
  if (await loadModels()) {
    setActivity("API key accepted.");
    if (state.file && !state.sessionId) startSession();
  }
});

el.fileInput.addEventListener("change", () => {
  const file = el.fileInput.files && el.fileInput.files[0];
  el.fileInput.value = "";
  openFile(file);
});

// drag and drop, and paste
let dragDepth = 0;
window.addEventListener("dragenter", (event) => {
  if (!event.dataTransfer || ![...event.dataTransfer.types].includes("Files")) return;
  dragDepth += 1;
  el.app.classList.add("dragging");
});
window.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) el.app.classList.remove("dragging");
});
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => {
  event.preventDefault();
  dragDepth = 0;
  el.app.classList.remove("dragging");
  const file = event.dataTransfer && event.dataTransfer.files[0];
  if (file) openFile(file);
});
window.addEventListener("paste", (event) => {
  const item = [...(event.clipboardData ? event.clipboardData.items : [])].find((i) => i.type.startsWith("image/"));
  if (item) openFile(item.getAsFile());
});

// keyboard shortcuts (not while typing)
document.addEventListener("keydown", (event) => {
  const target = event.target instanceof HTMLElement ? event.target : null;
  const textEntry =
    target &&
    (target.isContentEditable ||
      target.closest("select, textarea") ||
      (target instanceof HTMLInputElement && !["checkbox", "radio", "range", "button"].includes(target.type)));
  if (event.key === "Escape") {
    if (state.gesture) {
      state.gesture = null;
      drawInk();
    } else {
      clearError();
    }
    return;
  }
  if (textEntry) return;
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
    event.preventDefault();
    requestUndo();
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const index = "12345".indexOf(event.key);
  if (index >= 0) {
    selectTool(TOOLS[index]);
  } else if (event.key === "Enter" && !(target && target.closest("button, a, summary"))) {
    // (a focused button or link takes Enter itself)
    requestRefine();
  } else if (event.key.toLowerCase() === "u") {
    requestUndo();
  } else if (event.key.toLowerCase() === "o") {
    el.fileInput.click();
  }
});

new ResizeObserver(() => layout()).observe(el.canvasBox);
window.matchMedia("(resolution: 1dppx)").addEventListener?.("change", layout);

// ------------------------------------------------------------------ start
el.apiKey.value = state.api.apiKey;
selectTool("click-fg");
updateControls();
setConnection("none");
loadModels();
// for scripted checks in the browser console and tests
window.matteserve = { state, apiUrl };
