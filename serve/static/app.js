// The page of `pinembed serve`: search, related pins and a session tray over the JSON API.
// Plain ES module, no build step. Every string from the API goes into the page as text, never as HTML.
// The view lives in the URL (q, pin, s, view, k, kinds, dedupe, diversity), so it can be shared.

const KINDS = ["image", "motion", "video", "idea"];
const DEFAULTS = { k: 20, dedupe: null, diversity: 0 };
const MAX_PAGES = 6; // idea cards show at most this many page thumbnails

const $ = (sel) => document.querySelector(sel);
const TOKEN = readToken();
const known = new Map(); // pin id -> its card, for the tray's titles and thumbnails

let state = readState();
let imageFile = null; // the last uploaded image: not in the URL, so a reload cannot repeat it
let seq = 0; // only the latest request may render

// ---- the token, the API and its errors ----

function readToken() {
  const fromQuery = new URLSearchParams(location.search).get("token");
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  return fromQuery || fromHash || null;
}

/** A URL from the API made relative to the page (so a reverse-proxy prefix works), with the token. */
function apiUrl(u) {
  if (typeof u !== "string" || !u.startsWith("/api/")) return null; // only the API's own URLs
  let out = u.slice(1);
  if (TOKEN) out += (out.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN);
  return out;
}

class ApiError extends Error {
  constructor(message, hint) {
    super(message);
    this.hint = hint || "";
  }
}

async function api(path, init = {}) {
  const headers = new Headers(init.headers || {});
  if (TOKEN) headers.set("Authorization", "Bearer " + TOKEN);
  let resp;
  try {
    resp = await fetch(path, { ...init, headers });
  } catch (e) {
    throw new ApiError("The server cannot be reached.", "Is `pinembed serve` still running?");
  }
  let body = null;
  try {
    body = await resp.json();
  } catch (e) {
    body = null;
  }
  if (!resp.ok) {
    const err = (body && body.error) || {};
    const hint = err.hint || (resp.status === 401 ? "open the page as …/#token=YOUR_TOKEN" : "");
    throw new ApiError(err.message || `The server answered ${resp.status} ${resp.statusText}.`, hint);
  }
  if (body === null) throw new ApiError("The server's answer is not JSON.", "");
  return body;
}

function showError(err) {
  $("#error-message").textContent = err.message || String(err);
  $("#error-hint").textContent = err.hint || "";
  $("#error").hidden = false;
}

function clearError() {
  $("#error").hidden = true;
}

// ---- state <-> URL ----

function readState() {
  const p = new URLSearchParams(location.search);
  const num = (name, lo, hi) => {
    const v = p.get(name);
    if (v === null || v === "") return null;
    const n = Number(v);
    return Number.isFinite(n) && n >= lo && n <= hi ? n : null;
  };
  const kinds = (p.get("kinds") || "").split(",").filter((x) => KINDS.includes(x));
  return {
    q: p.get("q") || "",
    pin: p.get("pin") || "",
    view: p.get("view") || "",
    session: dedupeList(p.getAll("s")),
    k: Math.round(num("k", 1, 1000) ?? DEFAULTS.k),
    kinds,
    dedupe: num("dedupe", -1, 1),
    diversity: num("diversity", 0, 1) ?? DEFAULTS.diversity,
  };
}

function dedupeList(xs) {
  return [...new Set(xs.filter((x) => x))];
}

function stateUrl(s) {
  const p = new URLSearchParams();
  if (s.pin) p.set("pin", s.pin);
  else if (s.q) p.set("q", s.q);
  if (s.view) p.set("view", s.view);
  for (const id of s.session) p.append("s", id);
  if (s.k !== DEFAULTS.k) p.set("k", String(s.k));
  if (s.kinds.length) p.set("kinds", s.kinds.join(","));
  if (s.dedupe !== null) p.set("dedupe", String(s.dedupe));
  if (s.diversity) p.set("diversity", String(s.diversity));
  if (TOKEN && new URLSearchParams(location.search).has("token")) p.set("token", TOKEN);
  const qs = p.toString();
  return location.pathname + (qs ? "?" + qs : "") + location.hash;
}

/** Change the state, record it in the history (so back/forward and sharing work), and show it. */
function go(changes, { replace = false } = {}) {
  state = { ...state, ...changes };
  const url = stateUrl(state);
  if (url !== location.pathname + location.search + location.hash) {
    history[replace ? "replaceState" : "pushState"](null, "", url);
  }
  render();
}

function commonParams(s) {
  const p = new URLSearchParams();
  p.set("k", String(s.k));
  if (s.kinds.length) p.set("kinds", s.kinds.join(","));
  if (s.dedupe !== null) p.set("dedupe", String(s.dedupe));
  if (s.diversity) p.set("diversity", String(s.diversity));
  return p;
}

// ---- controls ----

function syncControls() {
  $("#q").value = state.pin ? "" : state.q;
  $("#k").value = String(state.k);
  for (const box of document.querySelectorAll("#kinds input")) box.checked = state.kinds.includes(box.value);
  $("#dedupe-on").checked = state.dedupe !== null;
  $("#dedupe").disabled = state.dedupe === null;
  if (state.dedupe !== null) $("#dedupe").value = String(state.dedupe);
  $("#diversity").value = String(state.diversity);
  $("#diversity-value").textContent = String(state.diversity);
}

function readControls() {
  const k = Math.round(Number($("#k").value));
  const d = Number($("#dedupe").value);
  const diversity = Number($("#diversity").value);
  return {
    k: Number.isFinite(k) && k >= 1 && k <= 1000 ? k : DEFAULTS.k,
    kinds: [...document.querySelectorAll("#kinds input:checked")].map((b) => b.value),
    dedupe: $("#dedupe-on").checked && Number.isFinite(d) ? d : null,
    diversity: Number.isFinite(diversity) ? diversity : 0,
  };
}

// ---- cards ----

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

function fmtTime(t) {
  return Number.isFinite(t) ? `${t.toFixed(1)} s` : "";
}

function thumbImg(src, alt, cls = "") {
  const url = apiUrl(src);
  return el("img", { src: url, alt, loading: "lazy", decoding: "async", class: cls || null, draggable: "false" });
}

/** One result card: thumbnail, kind badge, score, title; videos play from best_t_s, idea pins show pages. */
function card(r, { withScore = true, query = false } = {}) {
  if (!r || typeof r.pin_id !== "string") return null;
  known.set(r.pin_id, r);
  const title = r.title || r.pin_id;
  const kind = KINDS.includes(r.kind) ? r.kind : "pin";
  const media = el("div", { class: "media" }, thumbImg(r.thumb, title));
  const node = el("article", { class: `card kind-${kind}` + (query ? " query" : ""), "data-pin-id": r.pin_id,
    "data-kind": kind, "data-best-t-s": Number.isFinite(r.best_t_s) ? r.best_t_s : null, title: r.pin_id });
  const open = el("button", { type: "button", class: "open", "aria-label": `Related to ${title}` }, media);
  open.addEventListener("click", () => showRelated(r.pin_id));
  node.append(open);

  const meta = el("div", { class: "meta" },
    el("span", { class: `badge kind-${kind}`, text: kind }),
    withScore && Number.isFinite(r.score) ? el("span", { class: "score", text: r.score.toFixed(3) }) : null,
    (kind === "video" || kind === "motion") && Number.isFinite(r.best_t_s)
      ? el("span", { class: "time", text: "@ " + fmtTime(r.best_t_s) }) : null,
    kind === "idea" && Number.isInteger(r.best_page) ? el("span", { class: "time", text: `page ${r.best_page + 1}` }) : null,
  );
  node.append(meta, el("h3", { class: "title", text: title }));

  if (kind === "video" || kind === "motion") addPlayer(node, media, r);
  if (kind === "idea" && Number.isInteger(r.pages) && r.pages > 0) node.append(pageStrip(r));

  const add = el("button", { type: "button", class: "add", title: "Add to the session",
    "aria-label": `Add ${title} to the session`, text: "+" });
  add.disabled = state.session.includes(r.pin_id);
  add.addEventListener("click", (ev) => {
    ev.stopPropagation();
    addToSession(r.pin_id);
  });
  node.append(add);
  return node;
}

function pageStrip(r) {
  const strip = el("div", { class: "pages", "aria-label": `${r.pages} pages` });
  const base = typeof r.thumb === "string" ? r.thumb.replace(/&page=\d+/, "") : "";
  for (let i = 0; i < Math.min(r.pages, MAX_PAGES); i++) {
    const img = thumbImg(`${base}&page=${i}&size=96`, `page ${i + 1}`, i === r.best_page ? "best" : "");
    strip.append(img);
  }
  if (r.pages > MAX_PAGES) strip.append(el("span", { class: "more", text: `+${r.pages - MAX_PAGES}` }));
  return strip;
}

/** A video card plays its file from the best-matching frame while hovered (or after a click on ▶). */
function addPlayer(node, media, r) {
  const src = apiUrl(r.media);
  if (!src) return;
  const start = Number.isFinite(r.best_t_s) ? r.best_t_s : 0;
  let video = null;
  const play = () => {
    if (!video) {
      if (kind(r) === "motion") {
        video = el("img", { src, alt: "", class: "preview" }); // an animated image plays by itself
      } else {
        const v = el("video", { muted: true, loop: true, playsinline: true, preload: "auto", class: "preview" });
        v.muted = true;
        v.addEventListener("loadedmetadata", () => {
          const at = Math.min(start, Math.max(0, (v.duration || start) - 0.05));
          if (Math.abs(v.currentTime - at) > 0.05) v.currentTime = at;
        }, { once: true });
        // a media fragment starts playback at the frame on its own, even before the seek above runs
        v.src = start > 0 ? `${src}#t=${start.toFixed(3)}` : src;
        video = v;
      }
      media.append(video);
    }
    if (video.play) video.play().catch(() => {});
  };
  const stop = () => {
    if (!video) return;
    if (video.pause) video.pause();
    video.remove();
    video = null;
  };
  node.addEventListener("mouseenter", play);
  node.addEventListener("mouseleave", stop);
  const btn = el("button", { type: "button", class: "play", "aria-label": "Play", text: "▶" });
  btn.addEventListener("click", (ev) => {
    ev.stopPropagation();
    if (video) stop();
    else play();
  });
  node.append(btn);
}

function kind(r) {
  return KINDS.includes(r.kind) ? r.kind : "pin";
}

function renderResults(results, took) {
  const grid = $("#results");
  grid.replaceChildren(...(Array.isArray(results) ? results : []).map((r) => card(r)).filter(Boolean));
  const n = grid.children.length;
  const ms = Number.isFinite(took) ? ` in ${took.toFixed(0)} ms` : "";
  $("#status").textContent = n ? `${n} pin${n === 1 ? "" : "s"}${ms}` : "No pins matched.";
}

function renderQuery(label, node) {
  const q = $("#query");
  if (!label) {
    q.hidden = true;
    q.replaceChildren();
    return;
  }
  q.replaceChildren(el("h2", { text: label }), ...(node ? [node] : []));
  q.hidden = false;
}

// ---- views ----

async function run(request) {
  const mine = ++seq;
  clearError();
  $("#results").setAttribute("aria-busy", "true");
  try {
    const body = await request();
    if (mine !== seq) return;
    renderResults(body.results, body.took_ms);
    return body;
  } catch (e) {
    if (mine !== seq) return;
    $("#results").replaceChildren();
    $("#status").textContent = "";
    showError(e);
  } finally {
    if (mine === seq) $("#results").removeAttribute("aria-busy");
  }
}

function render() {
  syncControls();
  renderTray();
  const s = state;
  if (s.pin) {
    renderQuery("Related to", known.has(s.pin) ? card(known.get(s.pin), { withScore: false, query: true }) : null);
    run(async () => {
      const p = commonParams(s);
      p.set("pin", s.pin);
      const body = await api("api/related?" + p);
      if (body.query) renderQuery("Related to", card(body.query, { withScore: false, query: true }));
      return body;
    });
  } else if (s.view === "session" && s.session.length) {
    renderQuery(`Related to the session (${s.session.length} pins)`);
    run(() => api("api/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ pins: s.session, k: s.k, kinds: s.kinds.length ? s.kinds : null, dedupe: s.dedupe,
        diversity: s.diversity }),
    }));
  } else if (s.view === "image" && imageFile) {
    searchImage(imageFile);
  } else if (s.q) {
    renderQuery("");
    run(() => {
      const p = commonParams(s);
      p.set("text", s.q);
      return api("api/search?" + p);
    });
  } else {
    seq++;
    renderQuery(s.view === "image" ? "An uploaded image is not kept in the URL: drop it again." : "");
    $("#results").replaceChildren();
    $("#status").textContent = "Search by text, or drop an image anywhere on the page.";
  }
}

function showRelated(pinId) {
  imageFile = null;
  go({ pin: pinId, q: "", view: "" });
  window.scrollTo({ top: 0 });
}

function searchImage(file) {
  imageFile = file;
  const preview = el("img", { src: URL.createObjectURL(file), alt: file.name, class: "upload" });
  renderQuery(`Pins like ${file.name}`, preview);
  run(() => {
    const form = new FormData();
    form.append("image", file, file.name);
    const p = commonParams(state);
    for (const [name, value] of p) form.append(name, value);
    return api("api/search", { method: "POST", body: form });
  });
}

function startImageSearch(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    showError(new ApiError(`${file.name} is not an image.`, "drop a JPEG, PNG, WebP or GIF file"));
    return;
  }
  imageFile = file;
  state = { ...state, pin: "", q: "", view: "image" };
  history.pushState(null, "", stateUrl(state));
  syncControls();
  renderTray();
  searchImage(file);
}

// ---- the session tray ----

function addToSession(pinId) {
  if (state.session.includes(pinId)) return;
  const session = [...state.session, pinId];
  // stay on the current view; only the tray changes (no new request unless the session view is shown)
  state = { ...state, session };
  history.pushState(null, "", stateUrl(state));
  renderTray();
  for (const b of document.querySelectorAll(".card .add")) {
    if (b.closest(".card").dataset.pinId === pinId) b.disabled = true;
  }
  if (state.view === "session") render();
}

function removeFromSession(pinId) {
  const session = state.session.filter((x) => x !== pinId);
  go({ session, view: state.view === "session" && !session.length ? "" : state.view });
}

function renderTray() {
  const list = $("#tray-pins");
  const items = state.session.map((id) => {
    const r = known.get(id);
    const title = (r && r.title) || id;
    const thumb = r && r.thumb ? r.thumb : `/api/thumb?pin=${encodeURIComponent(id)}`;
    const remove = el("button", { type: "button", class: "remove", "aria-label": `Remove ${title}`, text: "×" });
    remove.addEventListener("click", () => removeFromSession(id));
    const open = el("button", { type: "button", class: "open" }, thumbImg(thumb + "&size=96", title),
      el("span", { text: title }));
    open.addEventListener("click", () => showRelated(id));
    return el("li", { "data-pin-id": id, title: id }, open, remove);
  });
  list.replaceChildren(...items);
  $("#tray-count").textContent = String(state.session.length);
  $("#tray-empty").hidden = state.session.length > 0;
  $("#tray-related").disabled = !state.session.length;
  $("#tray-clear").disabled = !state.session.length;
  for (const id of state.session) if (!known.has(id)) fetchPin(id);
}

const pending = new Set();
async function fetchPin(id) {
  if (pending.has(id)) return;
  pending.add(id);
  try {
    const r = await api("api/pin?pin=" + encodeURIComponent(id));
    known.set(id, r);
    renderTray();
  } catch (e) {
    // an unknown pin in a shared URL: the tray keeps its id, the session query will say what is wrong
  }
}

// ---- wiring ----

function wire() {
  $("#search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = $("#q").value.trim();
    if (!q) return;
    imageFile = null;
    go({ q, pin: "", view: "" });
  });
  $("#image").addEventListener("change", (ev) => {
    startImageSearch(ev.target.files[0]);
    ev.target.value = "";
  });
  $("#controls").addEventListener("submit", (ev) => ev.preventDefault());
  $("#controls").addEventListener("change", () => go(readControls()));
  $("#diversity").addEventListener("input", () => {
    $("#diversity-value").textContent = $("#diversity").value;
  });
  $("#dedupe-on").addEventListener("change", () => {
    $("#dedupe").disabled = !$("#dedupe-on").checked;
  });
  $("#error-close").addEventListener("click", clearError);
  $("#tray-related").addEventListener("click", () => go({ view: "session", pin: "", q: state.q }));
  $("#tray-clear").addEventListener("click", () => go({ session: [], view: state.view === "session" ? "" : state.view }));
  window.addEventListener("popstate", () => {
    state = readState();
    render();
  });

  // drag and drop an image anywhere on the page
  let depth = 0;
  const drop = $("#drop");
  const hasFiles = (ev) => ev.dataTransfer && [...ev.dataTransfer.types].includes("Files");
  document.addEventListener("dragenter", (ev) => {
    if (!hasFiles(ev)) return;
    depth++;
    drop.hidden = false;
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) drop.hidden = true;
  });
  document.addEventListener("dragover", (ev) => {
    if (hasFiles(ev)) ev.preventDefault();
  });
  document.addEventListener("drop", (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    depth = 0;
    drop.hidden = true;
    startImageSearch(ev.dataTransfer.files[0]);
  });
}

async function health() {
  try {
    const h = await api("api/health");
    const pins = Number.isFinite(h.pins) ? h.pins : "?";
    $("#health").textContent = `${pins} pins · model ${h.model_id ?? "?"}`;
  } catch (e) {
    showError(e);
  }
}

wire();
render();
health();
