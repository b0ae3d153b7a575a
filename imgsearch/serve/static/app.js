// The imgsearch page: one query at a time (an uploaded image, or an indexed image by
// path), results as a grid of thumbnails, "more" fetches the next page. Plain browser
// APIs only: nothing is fetched from anywhere but this server.
"use strict";

const $ = (id) => document.getElementById(id);
let current = null; // {file} or {name}: what the shown results are for
let shown = 0;
let searches = 0; // counts searches started: only the latest one's answer is shown
let focusResults = false; // a search started from a result keeps the focus on the new results

// A token given as #token=... is kept as a cookie for the API and image requests.
if (location.hash.startsWith("#token=")) {
  document.cookie = "imgsearch_token=" + encodeURIComponent(location.hash.slice(7)) + "; SameSite=Strict; path=/";
  history.replaceState(null, "", location.pathname);
}

function setStatus(text, isError, details) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(isError));
  $("details").textContent = details || "";
}

// What went wrong, as a sentence a person reads: the server's own text for a refused
// request, a plain one for the usual cases.
function failureText(response, answer, error) {
  if (!response) return "The server cannot be reached. Is `imgsearch serve` still running?";
  if (response.status === 415) return "That file is not an image this server can read.";
  if (response.status === 413) return "That file is too large for this server.";
  if (response.status === 401) return "This server wants a token: open the page with #token=… at the end of its address.";
  return "Search failed: " + ((answer && answer.error) || response.statusText);
}

function params(offset) {
  return {
    extractor: $("extractor").value, metric: $("metric").value, k: Number($("k").value),
    offset: offset, rerank: $("rerank").value || null, under: $("under").value.trim() || null,
  };
}

async function run(offset) {
  if (!current) return;
  const p = params(offset);
  let request;
  if (current.file) {
    const form = new FormData();
    form.append("image", current.file);
    if (current.box) form.append("box", current.box.map(Math.round).join(","));
    for (const [key, value] of Object.entries(p)) if (value !== null) form.append(key, String(value));
    request = { method: "POST", body: form };
  } else {
    request = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ...p, name: current.name }) };
  }
  if (!offset) { $("results").replaceChildren(); shown = 0; $("more").hidden = true; $("weak").hidden = true; }
  setStatus(offset ? "Loading more…" : "Searching…");
  const asked = ++searches;
  let response = null, answer = null;
  try {
    response = await fetch("/api/search", request);
    answer = await response.json();
  } catch (e) {
    answer = null;
  }
  if (asked !== searches) return; // a newer search has started: its answer is the one to show
  if (!response || !response.ok || !answer) {
    if (!offset) { $("results").replaceChildren(); $("current").hidden = Boolean(current.file); }
    setStatus(failureText(response, answer), true);
    return;
  }
  $("weak").hidden = answer.close_match !== false || Boolean(offset);
  for (const hit of answer.results) $("results").append(card(hit));
  shown += answer.results.length;
  $("more").hidden = shown >= answer.total || answer.results.length === 0;
  const ms = answer.elapsed_s * 1000;
  setStatus(`${answer.total.toLocaleString()} photos${answer.under ? " under " + answer.under : ""} searched in ${ms < 10 ? ms.toFixed(1) : Math.round(ms).toLocaleString()} ms` +
            (answer.rerank ? `, re-ranked: ${rerankName(answer.rerank)}` : "") + ".",
            false,
            `${answer.extractor} / ${answer.metric} · re-ranking ${answer.rerank || "none"} · ` +
            `${answer.rows_scanned.toLocaleString()} rows scanned (${answer.served}) · index state ${answer.state} · ` +
            `showing ${shown.toLocaleString()}`);
  if (focusResults && !offset) {
    focusResults = false;
    const first = $("results").querySelector("button.hit");
    if (first) first.focus({ preventScroll: true });
  }
}

function rerankName(spec) {
  const option = [...$("rerank").options].find((o) => o.value && spec.split(":")[0] === o.value);
  return option ? option.textContent : spec;
}

function card(hit) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "hit";
  button.title = "Search by " + hit.path;
  button.dataset.path = hit.path;
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = hit.name;
  img.src = `/api/images/${hit.id}/thumbnail`;
  const meta = document.createElement("div");
  meta.className = "meta";
  const rank = document.createElement("span");
  rank.className = "rank";
  rank.textContent = "#" + hit.rank;
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = hit.score.toFixed(4);
  meta.append(rank, score);
  const name = document.createElement("div");
  name.className = "name";
  name.textContent = hit.path;
  button.append(img, meta, name);
  if (hit.corners) {
    // Verified: the same object, or only the same place (another thing photographed on the
    // same desk). Hovering or focusing it draws where it is in the query photo.
    const scene = hit.match === "scene";
    button.classList.add(scene ? "scene" : "verified");
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = `${scene ? "same scene only" : "same object"} · ${hit.inliers} of ${hit.matches} points agree`;
    button.append(badge);
    button.title += scene ? " (the same place as your photo, not its object)" : " (same object as in your photo)";
    for (const on of ["mouseenter", "focus"]) button.addEventListener(on, () => drawOutline(hit.corners));
    for (const off of ["mouseleave", "blur"]) button.addEventListener(off, () => drawOutline(null));
  }
  button.addEventListener("click", (e) => {
    focusResults = e.detail === 0; // Enter or Space: the keyboard stays on the results
    searchByName(hit.path, `/api/images/${hit.id}/thumbnail`);
  });
  const actions = document.createElement("div");
  actions.className = "actions";
  const original = document.createElement("a");
  original.href = `/api/images/${hit.id}/file`;
  original.target = "_blank";
  original.rel = "noopener";
  original.textContent = "original";
  original.title = "Open the original file of " + hit.path;
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "copy";
  copy.textContent = "copy path";
  copy.title = "Copy " + hit.path;
  copy.addEventListener("click", () => copyText(hit.path, copy));
  actions.append(original, copy);
  item.append(button, actions);
  return item;
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "copied";
  } catch (e) {
    button.textContent = "select it: " + text;
  }
  setTimeout(() => { button.textContent = "copy path"; }, 2000);
}

function drawOutline(corners) {
  // Corners are in the query photo's own pixels: the outline's coordinate space is the
  // photo's, stretched over the shown image.
  const image = $("current-image");
  const outline = $("outline");
  outline.setAttribute("viewBox", `0 0 ${image.naturalWidth || 1} ${image.naturalHeight || 1}`);
  // a box's search found the object in the box's pixels: back to the whole photo's
  const [dx, dy] = current && current.box ? current.box : [0, 0];
  $("outline-shape").setAttribute("points", corners && current && current.file
    ? corners.map((p) => [p[0] + dx, p[1] + dy].join(",")).join(" ") : "");
}

function showCurrent(src, label) {
  drawOutline(null);
  $("box").hidden = true;
  const photo = Boolean(current && current.file);
  $("box-start").hidden = $("box-hint").hidden = !photo;
  frame.classList.toggle("drawable", photo);
  $("current").hidden = false;
  $("current-image").src = src || "";
  $("current-image").hidden = !src; // a search by name from a link: no thumbnail to show
  $("current-label").textContent = "Query: " + label;
}

// A box on the query photo: drawn with a mouse or a finger, or placed and sized with the
// keyboard; its corners are kept in the photo's own pixels (x, y, width, height).
const MIN_BOX = 16;
let dragFrom = null;

function photoScale() {
  const image = $("current-image");
  return image.naturalWidth / Math.max(image.clientWidth, 1);
}

function showBox(box) {
  const scale = photoScale();
  Object.assign($("box").style, { left: box[0] / scale + "px", top: box[1] / scale + "px",
                                  width: box[2] / scale + "px", height: box[3] / scale + "px" });
  $("box").hidden = false;
}

function clampBox([x, y, w, h]) {
  const image = $("current-image");
  w = Math.min(Math.max(w, MIN_BOX), image.naturalWidth);
  h = Math.min(Math.max(h, MIN_BOX), image.naturalHeight);
  return [Math.min(Math.max(x, 0), image.naturalWidth - w), Math.min(Math.max(y, 0), image.naturalHeight - h), w, h];
}

function searchBox(box) {
  current = { file: current.file, box, label: current.label };
  $("current-label").textContent = `Query: ${current.label} (the part in the box)`;
  showBox(box);
  run(0);
}

function photoPoint(event) {
  const rect = $("current-image").getBoundingClientRect();
  const scale = photoScale();
  return [(event.clientX - rect.left) * scale, (event.clientY - rect.top) * scale];
}

const frame = document.querySelector("#current .frame");
frame.addEventListener("pointerdown", (e) => {
  if (!current || !current.file) return;
  e.preventDefault();
  frame.setPointerCapture(e.pointerId);
  dragFrom = photoPoint(e);
});
frame.addEventListener("pointermove", (e) => {
  if (!dragFrom) return;
  const [x, y] = photoPoint(e);
  showBox([Math.min(x, dragFrom[0]), Math.min(y, dragFrom[1]), Math.abs(x - dragFrom[0]), Math.abs(y - dragFrom[1])]);
});
frame.addEventListener("pointerup", (e) => {
  if (!dragFrom) return;
  const [x, y] = photoPoint(e);
  const box = [Math.min(x, dragFrom[0]), Math.min(y, dragFrom[1]), Math.abs(x - dragFrom[0]), Math.abs(y - dragFrom[1])];
  dragFrom = null;
  if (box[2] >= MIN_BOX && box[3] >= MIN_BOX) searchBox(clampBox(box));
  else if (!current.box) $("box").hidden = true;
});
$("box-start").addEventListener("click", () => {
  const image = $("current-image");
  keyBox = clampBox([image.naturalWidth / 4, image.naturalHeight / 4, image.naturalWidth / 2, image.naturalHeight / 2]);
  showBox(keyBox);
  $("box").focus();
});
let keyBox = null;
$("box").addEventListener("keydown", (e) => {
  if (!keyBox) return;
  const image = $("current-image");
  const step = [image.naturalWidth / 20, image.naturalHeight / 20];
  const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  if (moves[e.key]) {
    const [dx, dy] = moves[e.key];
    keyBox = e.shiftKey ? clampBox([keyBox[0], keyBox[1], keyBox[2] + dx * step[0], keyBox[3] + dy * step[1]])
                        : clampBox([keyBox[0] + dx * step[0], keyBox[1] + dy * step[1], keyBox[2], keyBox[3]]);
    showBox(keyBox);
    e.preventDefault();
  } else if (e.key === "Enter") {
    searchBox(keyBox);
    keyBox = null;
    e.preventDefault();
  } else if (e.key === "Escape") {
    keyBox = null;
    $("box").hidden = !current.box;
    if (current.box) showBox(current.box);
    $("box-start").focus();
  }
});

function searchByFile(file) {
  if (!file) return;
  current = { file, label: file.name || "pasted image" };
  $("file").value = ""; // the same file can be chosen again (after an error, say)
  showCurrent(URL.createObjectURL(file), file.name || "pasted image");
  run(0);
}

function searchByName(path, thumb) {
  current = { name: path };
  showCurrent(thumb, path);
  run(0);
  window.scrollTo({ top: 0, behavior: "smooth" });
}

async function init() {
  try {
    const response = await fetch("/api/stats");
    const stats = await response.json();
    if (!response.ok) throw new Error(stats.error || response.statusText);
    for (const name of Object.keys(stats.extractors)) $("extractor").append(new Option(name, name, false, name === stats.default_extractor));
    for (const name of ["pearson", "cosine", "bhattacharyya"]) $("metric").append(new Option(name, name, false, name === stats.default_metric));
    setStatus(`${stats.images.toLocaleString()} photos indexed. Drop, paste or choose an image to search.`);
    // /#name=PATH (the duplicates page's "search" links): search by that indexed image at once
    if (location.hash.startsWith("#name=")) searchByName(decodeURIComponent(location.hash.slice(6)), null);
  } catch (e) {
    setStatus("The index cannot be read: " + e.message, true);
  }
}

$("file").addEventListener("change", (e) => searchByFile(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); searchByFile(e.dataTransfer.files[0]); });
document.addEventListener("paste", (e) => {
  const item = [...(e.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
  if (item) searchByFile(item.getAsFile());
});
$("more").addEventListener("click", () => run(shown));
for (const id of ["extractor", "metric", "rerank", "k", "under"]) $(id).addEventListener("change", () => run(0));
init();
