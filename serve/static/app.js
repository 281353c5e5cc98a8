// The page of `pinembed serve`: search, related pins and a session tray over the JSON API.
// Plain ES module, no build step. Every string from the API goes into the page as text, never as HTML.
// The view lives in the URL (q, pin, s, view, page, k, kinds, dedupe, diversity, where), so it can be shared.
// The filter box takes the text form of a where (category = 'shoes' AND price < 50): the server reads and
// checks it, and its 400 message is shown in the error banner.
// With nothing asked, the page lists the pins newest first, k a page.

const KINDS = ["image", "motion", "video", "idea"];
const DEFAULTS = { k: 20, dedupe: null, diversity: 0 };
const MAX_PAGES = 6; // idea cards show at most this many page thumbnails
const NOT_PLAYABLE = "preview not playable in this browser; ";
// image types every browser shows from a local file; others (HEIC, TIFF, PSD, ...) are converted by the server
const SHOWN_AS_IS = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/avif"];

const $ = (sel) => document.querySelector(sel);
const TOKEN = readToken();
const known = new Map(); // pin id -> its card, for the tray's titles and thumbnails

let state = readState();
let imageFile = null; // the last uploaded image: not in the URL, so a reload cannot repeat it
let seq = 0; // only the latest request may render
let previewUrl = null; // the object URL of the uploaded image's preview (revoked when replaced)

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
    page: Math.round(num("page", 1, 1e6) ?? 1),
    session: dedupeList(p.getAll("s")),
    k: Math.round(num("k", 1, 1000) ?? DEFAULTS.k),
    kinds,
    dedupe: num("dedupe", -1, 1),
    diversity: num("diversity", 0, 1) ?? DEFAULTS.diversity,
    where: (p.get("where") || "").trim(),
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
  if (s.page > 1 && !s.pin && !s.q && !s.view) p.set("page", String(s.page));
  for (const id of s.session) p.append("s", id);
  if (s.k !== DEFAULTS.k) p.set("k", String(s.k));
  if (s.kinds.length) p.set("kinds", s.kinds.join(","));
  if (s.dedupe !== null) p.set("dedupe", String(s.dedupe));
  if (s.diversity) p.set("diversity", String(s.diversity));
  if (s.where) p.set("where", s.where);
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
  if (s.where) p.set("where", s.where);
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
  $("#where").value = state.where;
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
    where: $("#where").value.trim(),
  };
}

/** The controls as the user set them, applied when they differ from the view's (a new first page). */
function applyControls() {
  const c = readControls();
  const same = c.k === state.k && c.kinds.join() === state.kinds.join() && c.dedupe === state.dedupe
    && c.diversity === state.diversity && c.where === state.where;
  if (!same) go({ ...c, page: 1 });
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

/** A title as text, with a line-break opportunity after each / _ . (pin ids are paths): a long title
 * wraps between words, never inside one (the style sheet says so too). */
function titleNode(text) {
  const h = el("h3", { class: "title" });
  for (const part of String(text).split(/(?<=[/_.])/)) h.append(part, el("wbr"));
  h.lastChild.remove();
  return h;
}

function thumbImg(src, alt, cls = "") {
  const url = apiUrl(src);
  return el("img", { src: url, alt, loading: "lazy", decoding: "async", class: cls || null, draggable: "false" });
}

/** One result card: thumbnail, kind badge, score, title; videos play from best_t_s, idea pins show pages.
 * ``fused``: a session's result, whose score is its fused score (the order of the list). */
function card(r, { withScore = true, query = false, fused = false } = {}) {
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
    withScore ? scoreNode(r, fused) : null,
    (kind === "video" || kind === "motion") && Number.isFinite(r.best_t_s)
      ? el("span", { class: "time", text: "@ " + fmtTime(r.best_t_s) }) : null,
    kind === "idea" && Number.isInteger(r.best_page) ? el("span", { class: "time", text: `page ${r.best_page + 1}` }) : null,
  );
  node.append(meta, titleNode(title));

  if (kind === "video" && !playable(r)) notPlayable(node, r);
  else if (kind === "video" || kind === "motion") addPlayer(node, media, r);
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

function scoreNode(r, fused) {
  if (fused && Number.isFinite(r.fused)) {
    const cos = Number.isFinite(r.score) ? `; best cosine to an interest ${r.score.toFixed(3)}` : "";
    return el("span", { class: "score fused", text: r.fused.toFixed(4),
      title: `fused score (reciprocal rank fusion of the session's interests)${cos}` });
  }
  if (fused && Number.isInteger(r.rank)) { // a server without fused scores: the rank is the order
    return el("span", { class: "score fused", text: `#${r.rank}`,
      title: `rank ${r.rank} of the fused ranking` + (Number.isFinite(r.score) ? `; cosine ${r.score.toFixed(3)}` : "") });
  }
  return Number.isFinite(r.score) ? el("span", { class: "score", text: r.score.toFixed(3), title: "cosine similarity" }) : null;
}

/** Whether this browser can play a video card's file: the server's verdict from the file's container
 * and codec, then the browser's own answer for its type. (A failed playback also says so: see addPlayer.) */
function playable(r) {
  if (r.playable === false) return false;
  if (typeof r.media_type === "string" && r.media_type) {
    return document.createElement("video").canPlayType(r.media_type) !== "";
  }
  return true;
}

/** A video card whose file the browser cannot play: its best frame stays, with a note and a link to the file. */
function notPlayable(node, r) {
  node.classList.add("unplayable");
  for (const b of node.querySelectorAll(".play")) b.remove();
  if (node.querySelector(".note")) return;
  const href = apiUrl(r.media);
  const why = typeof r.unplayable_reason === "string" ? r.unplayable_reason : "";
  const note = el("p", { class: "note", title: why || null }, NOT_PLAYABLE,
    href ? el("a", { href, target: "_blank", rel: "noopener", text: "open the file" }) : "open the file");
  node.querySelector(".title").after(note);
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
  let failed = false;
  const play = () => {
    if (failed) return;
    if (!video) {
      if (kind(r) === "motion") {
        video = el("img", { src, alt: "", class: "preview" }); // an animated image plays by itself
      } else {
        const v = el("video", { muted: true, loop: true, playsinline: true, preload: "auto", class: "preview" });
        v.muted = true;
        v.addEventListener("error", () => { // the browser could not play it after all
          failed = true;
          stop();
          notPlayable(node, r);
        }, { once: true });
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

function renderResults(results, took, { fused = false, status = null } = {}) {
  const grid = $("#results");
  grid.replaceChildren(...(Array.isArray(results) ? results : []).map((r) => card(r, { fused })).filter(Boolean));
  const n = grid.children.length;
  const ms = Number.isFinite(took) ? ` in ${took.toFixed(0)} ms` : "";
  $("#status").textContent = status ?? (n ? `${n} pin${n === 1 ? "" : "s"}${ms}` : "No pins matched.");
}

/** A session's results: the order is the fusion of its interests' lists, so the score shown is the fused one. */
function renderSession(body) {
  const results = Array.isArray(body.results) ? body.results : [];
  const n = results.length;
  const why = body.order === "fused"
    ? "in fused order: each interest of the session ranks pins, the lists are merged by reciprocal rank fusion; the score is the fused score"
    : "in fused order: each interest of the session ranks pins, the lists are merged by reciprocal rank fusion; #n is the place in it";
  renderResults(results, body.took_ms, { fused: true, status: n ? `${n} pin${n === 1 ? "" : "s"} ${why}.` : "No pins matched." });
}

/** The start page: recent pins, one page of k, with links to newer and older pages. */
function renderRecent(body, label) {
  const pins = Array.isArray(body.pins) ? body.pins : [];
  const total = Number.isInteger(body.total) ? body.total : pins.length;
  const page = Number.isInteger(body.page) ? body.page : 1;
  const size = Number.isInteger(body.size) ? body.size : pins.length;
  const pages = Math.max(1, Number.isInteger(body.pages) ? body.pages : 1);
  const first = (page - 1) * size + 1;
  renderResults(pins, body.took_ms, { status: total === 0 ? "No pins yet: ingest a folder, and they show here."
    : pins.length ? `${label} · newest first · ${first}–${first + pins.length - 1} of ${total}` : `No pins on page ${page}.` });
  const pager = $("#pager");
  $("#pager-where").textContent = `page ${page} of ${pages}`;
  $("#pager-newer").disabled = page <= 1;
  $("#pager-older").disabled = page >= pages;
  pager.hidden = total === 0;
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

async function run(request, show = (body) => renderResults(body.results, body.took_ms)) {
  const mine = ++seq;
  clearError();
  $("#pager").hidden = true;
  $("#results").setAttribute("aria-busy", "true");
  try {
    const body = await request();
    if (mine !== seq) return;
    show(body);
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
      showAttributes(s.pin);
      return body;
    });
  } else if (s.view === "session" && s.session.length) {
    renderQuery(`Related to the session (${s.session.length} pins)`);
    run(() => api("api/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ pins: s.session, k: s.k, kinds: s.kinds.length ? s.kinds : null, dedupe: s.dedupe,
        diversity: s.diversity, where: s.where || null }),
    }), renderSession);
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
    renderQuery(s.view === "image" ? "An uploaded image is not kept in the URL: drop it again." : "");
    run(() => {
      const p = new URLSearchParams({ page: String(s.page), size: String(s.k) });
      if (s.kinds.length) p.set("kinds", s.kinds.join(","));
      if (s.where) p.set("where", s.where);
      return api("api/pins?" + p);
    }, (body) => renderRecent(body, "Recent pins"));
  }
}

/** The query pin's details: its attributes (GET /api/pin), listed beside its card. */
async function showAttributes(pinId) {
  let r;
  try {
    r = await api("api/pin?pin=" + encodeURIComponent(pinId));
  } catch (e) {
    return; // the related pins show; their query's details are extra
  }
  const attrs = r && typeof r.attributes === "object" && r.attributes ? Object.entries(r.attributes) : [];
  const q = $("#query");
  if (state.pin !== pinId || !attrs.length || q.querySelector(".attributes")) return;
  const list = el("dl", { class: "attributes", "aria-label": "Attributes" });
  for (const [name, value] of attrs) {
    const text = value === null ? "—" : Array.isArray(value) ? value.join(", ") : String(value);
    list.append(el("dt", { text: name }), el("dd", { text }));
  }
  q.append(list);
}

function showRelated(pinId) {
  imageFile = null;
  go({ pin: pinId, q: "", view: "" });
  window.scrollTo({ top: 0 });
}

function searchImage(file) {
  imageFile = file;
  const preview = el("img", { alt: file.name, class: "upload" });
  showPreview(preview, file);
  renderQuery(`Pins like ${file.name}`, preview);
  run(() => {
    const form = new FormData();
    form.append("image", file, file.name);
    const p = commonParams(state);
    for (const [name, value] of p) form.append(name, value);
    return api("api/search", { method: "POST", body: form });
  });
}

/** The uploaded image in ``img``: as it is when every browser shows its type, else (HEIC, TIFF, PSD, ...,
 * or when the browser fails on it) a JPEG the server converts it to. */
function showPreview(img, file) {
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = null;
  const converted = async () => {
    img.dataset.preview = "server";
    try {
      const form = new FormData();
      form.append("image", file, file.name);
      const headers = new Headers();
      if (TOKEN) headers.set("Authorization", "Bearer " + TOKEN);
      const resp = await fetch("api/preview", { method: "POST", body: form, headers });
      if (!resp.ok || !(resp.headers.get("content-type") || "").startsWith("image/")) {
        img.replaceWith(el("span", { class: "upload none", text: "(no preview)" }));
        return;
      }
      previewUrl = URL.createObjectURL(await resp.blob());
      img.src = previewUrl;
    } catch (e) {
      img.replaceWith(el("span", { class: "upload none", text: "(no preview)" }));
    }
  };
  if (SHOWN_AS_IS.includes(file.type)) {
    img.dataset.preview = "browser";
    img.addEventListener("error", () => { if (img.dataset.preview === "browser") converted(); }, { once: true });
    previewUrl = URL.createObjectURL(file);
    img.src = previewUrl;
  } else {
    converted();
  }
}

function startImageSearch(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/") && file.type !== "application/octet-stream") {
    showError(new ApiError(`${file.name} is not an image.`, "drop a JPEG, PNG, WebP, GIF, HEIC, TIFF or other image file"));
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
  $("#controls").addEventListener("submit", (ev) => {
    ev.preventDefault();
    applyControls();
  });
  $("#controls").addEventListener("change", applyControls);
  $("#where").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      applyControls();
    }
  });
  $("#home").addEventListener("click", (ev) => {
    ev.preventDefault();
    imageFile = null;
    go({ q: "", pin: "", view: "", page: 1 });
  });
  $("#diversity").addEventListener("input", () => {
    $("#diversity-value").textContent = $("#diversity").value;
  });
  $("#dedupe-on").addEventListener("change", () => {
    $("#dedupe").disabled = !$("#dedupe-on").checked;
  });
  $("#error-close").addEventListener("click", clearError);
  $("#pager-newer").addEventListener("click", () => { go({ page: Math.max(1, state.page - 1) }); window.scrollTo({ top: 0 }); });
  $("#pager-older").addEventListener("click", () => { go({ page: state.page + 1 }); window.scrollTo({ top: 0 }); });
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
