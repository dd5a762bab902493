// semstyle studio: plain JavaScript, no libraries, nothing loaded from elsewhere.
//
// The doodle is kept as one palette index per pixel (255 = unpainted), never as canvas strokes: the canvas only
// shows it, so every painted pixel is exactly a palette colour (no anti-aliasing, ever), undo is a copy of the
// index array, and picking another painting repaints the same regions in its colours.
"use strict";

const UNPAINTED = 255;
const HISTORY = 40;
const $ = (id) => document.getElementById(id);

const S = {
  canvasLong: 512, style: null, palette: [], current: 0, tool: "brush", size: 24,
  W: 0, H: 0, labels: null, undo: [], redo: [], photo: null, aspect: "style",
  run: null, source: null, drawing: false, last: null, dirty: false,
};

const canvas = $("doodle");
const ctx = canvas.getContext("2d");

// ---- small helpers ----------------------------------------------------------------------------------------------

async function api(path, options = {}) {
  const r = await fetch(path, options);
  let body = null;
  try { body = await r.json(); } catch (e) { body = { error: `${r.status} ${r.statusText}` }; }
  if (!r.ok) { const err = new Error(body && body.error ? body.error : `${r.status}`); err.status = r.status; throw err; }
  return body;
}

function hexToRgb(hex) {
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

function setStatus(text, error = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", error);
}

function setWarnings(list) {
  const ul = $("warnings");
  ul.replaceChildren(...(list || []).map((w) => { const li = document.createElement("li"); li.textContent = w; return li; }));
}

// ---- the doodle bitmap ------------------------------------------------------------------------------------------

function shapeFor(aspect) {
  let ratio;  // width / height
  if (S.photo) ratio = S.photo.width / S.photo.height;
  else if (aspect === "style" && S.style) ratio = S.style.width / S.style.height;
  else if (aspect === "style") ratio = 4 / 3;
  else { const [a, b] = aspect.split(":").map(Number); ratio = a / b; }
  const L = S.canvasLong;
  return ratio >= 1 ? [L, Math.max(16, Math.round(L / ratio))] : [Math.max(16, Math.round(L * ratio)), L];
}

function resizeBitmap(W, H) {
  // nearest-neighbour resampling of the index array, so a doodle survives a change of shape
  const old = S.labels, oW = S.W, oH = S.H;
  const labels = new Uint8Array(W * H).fill(UNPAINTED);
  if (old) {
    for (let y = 0; y < H; y++) {
      const sy = Math.min(oH - 1, Math.floor((y + 0.5) * oH / H));
      for (let x = 0; x < W; x++) labels[y * W + x] = old[sy * oW + Math.min(oW - 1, Math.floor((x + 0.5) * oW / W))];
    }
  }
  S.W = W; S.H = H; S.labels = labels;
  canvas.width = W; canvas.height = H;
  S.undo = []; S.redo = [];
  render();
}

function reshape() {
  const [W, H] = shapeFor(S.aspect);
  if (W !== S.W || H !== S.H) resizeBitmap(W, H);
}

function render() {
  const img = ctx.createImageData(S.W, S.H);
  const d = img.data, L = S.labels, K = S.palette.length;
  const rgb = S.palette.map((p) => hexToRgb(p.color));
  for (let i = 0; i < L.length; i++) {
    const k = L[i];
    if (k === UNPAINTED || k >= K) continue;  // transparent
    const c = rgb[k], o = 4 * i;
    d[o] = c[0]; d[o + 1] = c[1]; d[o + 2] = c[2]; d[o + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  $("undo").disabled = S.undo.length === 0;
  $("redo").disabled = S.redo.length === 0;
}

let frameRequested = false;
function renderSoon() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(() => { frameRequested = false; render(); });
}

function pushUndo() {
  S.undo.push(S.labels.slice());
  if (S.undo.length > HISTORY) S.undo.shift();
  S.redo = [];
}

function undo() {
  if (!S.undo.length) return;
  S.redo.push(S.labels); S.labels = S.undo.pop(); render();
}

function redo() {
  if (!S.redo.length) return;
  S.undo.push(S.labels); S.labels = S.redo.pop(); render();
}

function clearDoodle() {
  pushUndo(); S.labels.fill(UNPAINTED); render();
}

// A disc of diameter `size` centred at (cx, cy): a pixel is in when its centre is, so edges are hard.
function stamp(cx, cy, value) {
  const r = S.size / 2, W = S.W, H = S.H, L = S.labels;
  const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(H - 1, Math.ceil(cy + r));
  const x0 = Math.max(0, Math.floor(cx - r)), x1 = Math.min(W - 1, Math.ceil(cx + r));
  const r2 = Math.max(r * r, 0.25);
  for (let y = y0; y <= y1; y++) {
    const dy = y + 0.5 - cy;
    for (let x = x0; x <= x1; x++) {
      const dx = x + 0.5 - cx;
      if (dx * dx + dy * dy <= r2) L[y * W + x] = value;
    }
  }
}

function strokeTo(p, value) {
  const a = S.last || p;
  const dist = Math.hypot(p[0] - a[0], p[1] - a[1]);
  const step = Math.max(0.5, S.size / 4);
  const n = Math.max(1, Math.ceil(dist / step));
  for (let i = 1; i <= n; i++) stamp(a[0] + (p[0] - a[0]) * i / n, a[1] + (p[1] - a[1]) * i / n, value);
  S.last = p;
  renderSoon();
}

// 4-connected flood fill of the region under (x, y) with `value` (scanline, iterative).
function fill(x, y, value) {
  const W = S.W, H = S.H, L = S.labels;
  const target = L[y * W + x];
  if (target === value) return false;
  const stack = [[x, y]];
  while (stack.length) {
    let [sx, sy] = stack.pop();
    while (sx > 0 && L[sy * W + sx - 1] === target) sx--;
    let up = false, down = false;
    for (let cx = sx; cx < W && L[sy * W + cx] === target; cx++) {
      L[sy * W + cx] = value;
      if (sy > 0) {
        const t = L[(sy - 1) * W + cx] === target;
        if (t && !up) stack.push([cx, sy - 1]);
        up = t;
      }
      if (sy < H - 1) {
        const t = L[(sy + 1) * W + cx] === target;
        if (t && !down) stack.push([cx, sy + 1]);
        down = t;
      }
    }
  }
  return true;
}

function pointerPos(e) {
  const r = canvas.getBoundingClientRect();
  return [(e.clientX - r.left) * S.W / r.width, (e.clientY - r.top) * S.H / r.height];
}

canvas.addEventListener("pointerdown", (e) => {
  if (!S.palette.length || e.button !== 0) return;
  e.preventDefault();
  const p = pointerPos(e);
  if (S.tool === "fill") {
    const x = Math.floor(p[0]), y = Math.floor(p[1]);
    if (x < 0 || y < 0 || x >= S.W || y >= S.H) return;
    const before = S.labels.slice();
    if (fill(x, y, S.current)) { S.undo.push(before); if (S.undo.length > HISTORY) S.undo.shift(); S.redo = []; render(); }
    return;
  }
  canvas.setPointerCapture(e.pointerId);
  pushUndo();
  S.drawing = true; S.last = null;
  strokeTo(p, S.tool === "eraser" ? UNPAINTED : S.current);
});
canvas.addEventListener("pointermove", (e) => {
  if (!S.drawing) return;
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const ev of (events.length ? events : [e])) strokeTo(pointerPos(ev), S.tool === "eraser" ? UNPAINTED : S.current);
});
const endStroke = () => { if (S.drawing) { S.drawing = false; S.last = null; render(); } };
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

// ---- palette ----------------------------------------------------------------------------------------------------

function selectColor(k) {
  S.current = k;
  if (S.tool === "eraser") setTool("brush");
  document.querySelectorAll(".swatch button.chip").forEach((b) => b.classList.toggle("selected", Number(b.dataset.index) === k));
}

function renderPalette() {
  const box = $("palette");
  box.replaceChildren();
  S.palette.forEach((p, k) => {
    const row = document.createElement("div");
    row.className = "swatch";
    const chip = document.createElement("button");
    chip.type = "button"; chip.className = "chip"; chip.style.background = p.color;
    chip.dataset.index = k; chip.dataset.color = p.color;
    chip.title = `paint ${p.name} (${p.color}); in the painting it looks like the small square`;
    const mean = document.createElement("span");
    mean.className = "mean"; mean.style.background = p.mean;
    chip.appendChild(mean);
    chip.addEventListener("click", () => selectColor(k));
    const name = document.createElement("input");
    name.value = p.name; name.setAttribute("aria-label", `name of region ${k + 1}`); name.maxLength = 40;
    name.addEventListener("change", () => renameRegion(k, name.value, name));
    const share = document.createElement("span");
    share.className = "share"; share.textContent = `${Math.round(100 * p.share)}%`;
    share.title = "share of the painting";
    row.append(chip, name, share);
    box.appendChild(row);
  });
  $("palette-hint").hidden = S.palette.length > 0;
  selectColor(Math.min(S.current, Math.max(0, S.palette.length - 1)));
}

async function renameRegion(k, value, input) {
  const names = S.palette.map((p) => p.name);
  names[k] = value;
  try {
    const style = await api(`/api/styles/${S.style.id}/names`, {
      method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ names }),
    });
    // update in place (no re-render: the painter may already be typing the next name)
    S.palette.forEach((p, i) => { p.name = style.palette[i].name; });
    input.value = S.palette[k].name;
  } catch (e) { setStatus(e.message, true); }
}

// ---- styles -----------------------------------------------------------------------------------------------------

function useStyle(style) {
  S.style = style; S.palette = style.palette;
  if (style.map !== "joint") S.baseStyle = style.id;
  setWarnings(style.notes);
  $("style-view").hidden = false;
  $("style-img").src = style.image_url; $("style-map").src = style.map_url;
  $("style-name").textContent = style.name;
  document.querySelectorAll(".bundled button").forEach((b) => b.classList.toggle("selected", style.id.startsWith(b.dataset.name + "-auto")));
  renderPalette();
  reshape();
  render();
  updateButtons();
}

async function pickBundled(name) {
  setStatus(`making the map of ${name.replace(/_/g, " ")}...`);
  const form = new FormData();
  form.append("bundled", name); form.append("regions", $("regions").value);
  try { useStyle(await api("/api/styles", { method: "POST", body: form })); setStatus("idle"); }
  catch (e) { setStatus(e.message, true); }
}

async function uploadStyle() {
  const file = $("style-file").files[0];
  if (!file) { setStatus("style image: choose a file first", true); return; }
  const form = new FormData();
  form.append("image", file); form.append("regions", $("regions").value);
  if ($("map-file").files[0]) form.append("map", $("map-file").files[0]);
  setStatus("reading the painting...");
  try { useStyle(await api("/api/styles", { method: "POST", body: form })); setStatus("idle"); }
  catch (e) { setStatus(e.message, true); }
}

// ---- photo underlay ---------------------------------------------------------------------------------------------

function usePhoto(photo) {
  S.photo = photo;
  const u = $("underlay");
  u.hidden = !photo; $("opacity-group").hidden = !photo; $("remove-photo").hidden = !photo;
  $("aspect").disabled = !!photo;
  if (photo) u.src = photo.url; else u.removeAttribute("src");
  updateButtons();
  canvas.style.opacity = photo ? String($("opacity").value / 100) : "";
  reshape();
}

async function uploadPhoto() {
  const file = $("photo-file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("photo", file);
  try { usePhoto(await api("/api/photos", { method: "POST", body: form })); setStatus("idle"); }
  catch (e) { setStatus(e.message, true); }
  $("photo-file").value = "";
}

// ---- painting ---------------------------------------------------------------------------------------------------

function doodleBlob() {
  // RGBA PNG: painted pixels in their palette colour (opaque), unpainted ones transparent
  const off = document.createElement("canvas");
  off.width = S.W; off.height = S.H;
  const c = off.getContext("2d");
  const img = c.createImageData(S.W, S.H);
  const rgb = S.palette.map((p) => hexToRgb(p.color));
  for (let i = 0; i < S.labels.length; i++) {
    const k = S.labels[i];
    if (k === UNPAINTED || k >= rgb.length) continue;
    img.data.set([...rgb[k], 255], 4 * i);
  }
  c.putImageData(img, 0, 0);
  return new Promise((resolve) => off.toBlob(resolve, "image/png"));
}

function updateButtons() {
  const running = !!S.run;
  $("paint").disabled = running || !S.style;
  $("stop").disabled = !running;
  $("automap").hidden = !(S.photo && S.style);
}

async function paint() {
  if (!S.style) { setStatus("pick a painting first", true); return; }
  const form = new FormData();
  form.append("doodle", await doodleBlob(), "doodle.png");
  form.append("style", S.style.id);
  form.append("size", $("size").value);
  form.append("preset", $("preset").value);
  if (S.photo) form.append("photo", S.photo.id);
  if ($("steps").value) form.append("steps", $("steps").value);
  setWarnings([]);
  try {
    const r = await api("/api/paint", { method: "POST", body: form });
    setWarnings(r.warnings);
    follow(r.run);
  } catch (e) {
    setStatus(e.message, true);
  }
}

function follow(runId) {
  S.run = runId;
  updateButtons();
  const live = $("live");
  live.dataset.run = runId; live.dataset.state = "running";
  $("bar").value = 0;
  setStatus("starting...");
  if (S.source) S.source.close();
  const es = new EventSource(`/api/runs/${runId}/events`);
  S.source = es;
  es.addEventListener("progress", (ev) => {
    const m = JSON.parse(ev.data);
    if (m.kind === "step") {
      const loss = m.loss == null ? "" : `, loss ${m.loss.toPrecision(4)}`;
      const size = m.size ? ` (${m.size[1]}x${m.size[0]})` : "";
      setStatus(`phase ${m.scale + 1}/${m.scales}${size}, step ${m.step}/${m.steps}${loss}, ${m.elapsed.toFixed(0)} s`);
      $("bar").value = (m.scale + m.step / Math.max(1, m.steps)) / Math.max(1, m.scales);
    } else if (m.kind === "scale_start") {
      setStatus(`phase ${m.scale + 1}/${m.scales}: preparing the painting's patches...`);
    }
  });
  es.addEventListener("frame", (ev) => {
    const m = JSON.parse(ev.data);
    live.hidden = false; live.src = m.image; live.dataset.frames = String(m.n);
  });
  es.addEventListener("end", (ev) => {
    const m = JSON.parse(ev.data);
    es.close(); S.source = null; S.run = null;
    updateButtons();
    if (m.state === "error") {
      setStatus(`failed: ${m.error}`, true);
    } else {
      $("bar").value = m.state === "done" ? 1 : $("bar").value;
      setStatus(`${m.state === "done" ? "done" : "stopped; the last frame is kept"} in ${m.seconds} s (run ${m.run})`);
      live.hidden = false;
      live.src = `/api/runs/${m.run}/files/output.png?t=${Date.now()}`;
    }
    live.dataset.state = m.state;
    loadResults();
  });
  es.onerror = () => { if (es.readyState === EventSource.CLOSED && S.run === runId) setStatus("lost the connection to the server", true); };
}

async function stop() {
  try { await api("/api/stop", { method: "POST" }); setStatus("stopping at the next step..."); }
  catch (e) { setStatus(e.message, true); }
}

// ---- results ----------------------------------------------------------------------------------------------------

function link(href, text) {
  const a = document.createElement("a");
  a.href = href; a.textContent = text; a.download = ""; return a;
}

async function loadResults() {
  let data;
  try { data = await api("/api/runs"); } catch (e) { return; }
  const box = $("results");
  if (!data.results.length) { box.innerHTML = '<p class="hint">No paintings yet.</p>'; }
  else box.replaceChildren(...data.results.map(card));
  if (data.running && !S.run) follow(data.running.id);  // a run started in another tab, or before a reload
}

function card(r) {
  const el = document.createElement("div");
  el.className = "card"; el.dataset.run = r.id;
  const pics = document.createElement("div");
  pics.className = "pics";
  for (const name of ["output.png", "doodle_map.png"]) {
    if (!r.files[name]) continue;
    const img = document.createElement("img");
    img.src = r.files[name]; img.alt = name; img.loading = "lazy";
    pics.appendChild(img);
  }
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = `${r.id} · ${r.style || "?"} · ${r.size || "?"} px · ${r.preset || "?"}` +
    `${r.state === "stopped" ? " · stopped" : ""}${r.seconds ? ` · ${Math.round(r.seconds)} s` : ""}`;
  const links = document.createElement("div");
  links.className = "links";
  const labels = { "output.png": "result", "doodle_map.png": "doodle map", "config.yaml": "config", "sheet.png": "sheet" };
  for (const [name, text] of Object.entries(labels)) if (r.files[name]) links.appendChild(link(r.files[name], text));
  if (r.reopen) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = "reopen doodle"; b.className = "reopen";
    b.addEventListener("click", () => reopen(r.id));
    links.appendChild(b);
  }
  el.append(pics, meta, links);
  return el;
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img); img.onerror = () => reject(new Error(`could not load ${url}`));
    img.src = url;
  });
}

// Load a doodle or map image as palette indices at W x H (nearest neighbour; transparent = unpainted).
async function loadDoodle(url, W, H) {
  const img = await loadImage(`${url}?t=${Date.now()}`);
  W = W || img.naturalWidth; H = H || img.naturalHeight;
  const off = document.createElement("canvas");
  off.width = W; off.height = H;
  const c = off.getContext("2d");
  c.imageSmoothingEnabled = false;
  c.drawImage(img, 0, 0, W, H);
  const d = c.getImageData(0, 0, W, H).data;
  const rgb = S.palette.map((p) => hexToRgb(p.color));
  const labels = new Uint8Array(W * H).fill(UNPAINTED);
  for (let i = 0; i < labels.length; i++) {
    if (d[4 * i + 3] < 128) continue;
    let best = 0, bestD = Infinity;
    for (let k = 0; k < rgb.length; k++) {
      const e = (d[4 * i] - rgb[k][0]) ** 2 + (d[4 * i + 1] - rgb[k][1]) ** 2 + (d[4 * i + 2] - rgb[k][2]) ** 2;
      if (e < bestD) { bestD = e; best = k; }
    }
    labels[i] = best;
  }
  if (S.labels) { S.undo.push(S.labels); if (S.undo.length > HISTORY) S.undo.shift(); }
  if (W !== S.W || H !== S.H) { S.undo = []; }
  S.redo = [];
  S.labels = labels; S.W = W; S.H = H;
  canvas.width = W; canvas.height = H;
  render();
}

async function reopen(runId) {
  try {
    const info = await api(`/api/runs/${runId}/studio`);
    useStyle(await api(`/api/styles/${info.style}`));
    usePhoto(info.photo ? await api(`/api/photos/${info.photo}`) : null);
    await loadDoodle(info.doodle_url);
    if (info.size) $("size").value = info.size;
    if (info.preset) $("preset").value = info.preset;
    setStatus(`reopened the doodle of run ${runId}`);
  } catch (e) { setStatus(e.message, true); }
}

// The painting and the photo segmented together (--auto-maps): a style in joint colours and the photo's map as
// the starting doodle.
async function automap() {
  if (!S.style || !S.photo) return;
  const form = new FormData();
  form.append("style", S.style.map === "joint" && S.baseStyle ? S.baseStyle : S.style.id);
  form.append("regions", $("regions").value);
  setStatus("segmenting the painting and the photo together...");
  try {
    const style = await api(`/api/photos/${S.photo.id}/automap`, { method: "POST", body: form });
    useStyle(style);
    await loadDoodle(style.photo_map_url, S.W, S.H);
    setStatus("the photo's automatic map is the doodle: edit it, then Paint");
  } catch (e) { setStatus(e.message, true); }
}

// ---- wiring -----------------------------------------------------------------------------------------------------

function setTool(tool) {
  S.tool = tool;
  document.querySelectorAll('input[name="tool"]').forEach((r) => { r.checked = r.value === tool; });
}

function setSize(v) {
  S.size = Math.max(1, Math.min(96, Number(v) || 1));
  $("brush-size").value = S.size; $("brush-size-out").textContent = S.size;
}

document.querySelectorAll('input[name="tool"]').forEach((r) => r.addEventListener("change", () => setTool(r.value)));
$("brush-size").addEventListener("input", (e) => setSize(e.target.value));
$("undo").addEventListener("click", undo);
$("redo").addEventListener("click", redo);
$("clear").addEventListener("click", clearDoodle);
$("aspect").addEventListener("change", (e) => { S.aspect = e.target.value; reshape(); });
$("photo-file").addEventListener("change", uploadPhoto);
$("remove-photo").addEventListener("click", () => usePhoto(null));
$("opacity").addEventListener("input", (e) => { canvas.style.opacity = String(e.target.value / 100); });
$("upload-style-button").addEventListener("click", uploadStyle);
$("regions").addEventListener("change", () => {  // the automatic map again, with the new count
  if (S.style && S.style.map === "joint") { automap(); return; }
  const m = S.style && /^([a-z0-9_]+)-auto\d+$/.exec(S.style.id);
  if (m) pickBundled(m[1]);
});
$("automap").addEventListener("click", automap);
$("paint").addEventListener("click", paint);
$("stop").addEventListener("click", stop);
document.addEventListener("keydown", (e) => {
  if (e.target instanceof HTMLInputElement && e.target.type !== "radio" && e.target.type !== "range") return;
  const k = e.key.toLowerCase();
  if ((e.ctrlKey || e.metaKey) && k === "z") { e.preventDefault(); e.shiftKey ? redo() : undo(); }
  else if ((e.ctrlKey || e.metaKey) && k === "y") { e.preventDefault(); redo(); }
  else if (!e.ctrlKey && !e.metaKey && !e.altKey) {
    if (k === "b") setTool("brush"); else if (k === "f") setTool("fill"); else if (k === "e") setTool("eraser");
    else if (k === "[") setSize(S.size - 2); else if (k === "]") setSize(S.size + 2);
    else if (/^[1-8]$/.test(k) && Number(k) <= S.palette.length) selectColor(Number(k) - 1);
  }
});

async function init() {
  setSize(S.size);
  resizeBitmap(...shapeFor("style"));
  updateButtons();
  try {
    const data = await api("/api/styles");
    S.canvasLong = data.canvas;
    $("size").min = data.min_size; $("size").max = data.max_size;
    const box = $("bundled");
    box.replaceChildren(...data.bundled.map((b) => {
      const btn = document.createElement("button");
      btn.type = "button"; btn.dataset.name = b.name; btn.title = b.label;
      const img = document.createElement("img");
      img.src = b.url; img.alt = b.label;
      btn.append(img, document.createTextNode(b.label));
      btn.addEventListener("click", () => pickBundled(b.name));
      return btn;
    }));
  } catch (e) { setStatus(e.message, true); }
  loadResults();
}

init();
