// The imgsearch page: one query at a time (an uploaded image, or an indexed image by
// path), results as a grid of thumbnails, "more" fetches the next page. Plain browser
// APIs only: nothing is fetched from anywhere but this server.
"use strict";

const $ = (id) => document.getElementById(id);
let current = null; // {file} or {name}: what the shown results are for
let shown = 0;

// A token given as #token=... is kept as a cookie for the API and image requests.
if (location.hash.startsWith("#token=")) {
  document.cookie = "imgsearch_token=" + encodeURIComponent(location.hash.slice(7)) + "; SameSite=Strict; path=/";
  history.replaceState(null, "", location.pathname);
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(isError));
}

function params(offset) {
  return {
    extractor: $("extractor").value, metric: $("metric").value, k: Number($("k").value),
    offset: offset, rerank: $("rerank").value || null,
  };
}

async function run(offset) {
  if (!current) return;
  const p = params(offset);
  let request;
  if (current.file) {
    const form = new FormData();
    form.append("image", current.file);
    for (const [key, value] of Object.entries(p)) if (value !== null) form.append(key, String(value));
    request = { method: "POST", body: form };
  } else {
    request = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ...p, name: current.name }) };
  }
  setStatus(offset ? "Loading more…" : "Searching…");
  let answer;
  try {
    const response = await fetch("/api/search", request);
    answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
  } catch (e) {
    setStatus("Search failed: " + e.message, true);
    return;
  }
  if (!offset) { $("results").replaceChildren(); shown = 0; }
  for (const hit of answer.results) $("results").append(card(hit));
  shown += answer.results.length;
  $("more").hidden = shown >= answer.total || answer.results.length === 0;
  setStatus(`${answer.total.toLocaleString()} images ranked by ${answer.extractor} / ${answer.metric}; ` +
            `${answer.rows_scanned.toLocaleString()} rows scanned in ${(answer.elapsed_s * 1000).toFixed(1)} ms ` +
            `(state ${answer.state}, ${answer.served}); showing ${shown}.`);
}

function card(hit) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
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
    // Verified: the same object. Hovering or focusing it draws where it is in the query photo.
    button.classList.add("verified");
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = `same object · ${hit.inliers} matches`;
    button.append(badge);
    button.title += " (same object as in your photo)";
    for (const on of ["mouseenter", "focus"]) button.addEventListener(on, () => drawOutline(hit.corners));
    for (const off of ["mouseleave", "blur"]) button.addEventListener(off, () => drawOutline(null));
  }
  button.addEventListener("click", () => searchByName(hit.path, `/api/images/${hit.id}/thumbnail`));
  item.append(button);
  return item;
}

function drawOutline(corners) {
  // Corners are in the query photo's own pixels: the outline's coordinate space is the
  // photo's, stretched over the shown image.
  const image = $("current-image");
  const outline = $("outline");
  outline.setAttribute("viewBox", `0 0 ${image.naturalWidth || 1} ${image.naturalHeight || 1}`);
  $("outline-shape").setAttribute("points", corners && current && current.file ? corners.map((p) => p.join(",")).join(" ") : "");
}

function showCurrent(src, label) {
  drawOutline(null);
  $("current").hidden = false;
  $("current-image").src = src;
  $("current-label").textContent = "Query: " + label;
}

function searchByFile(file) {
  if (!file) return;
  current = { file };
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
    setStatus(`${stats.images.toLocaleString()} images indexed. Drop, paste or choose an image to search.`);
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
for (const id of ["extractor", "metric", "rerank", "k"]) $(id).addEventListener("change", () => run(0));
init();
