// Each group of copies as a row of thumbnails: the image kept first, then each copy with
// its score to it. Reads /api/duplicates only.
"use strict";

const $ = (id) => document.getElementById(id);

function tile(image, caption, kept) {
  const figure = document.createElement("figure");
  figure.className = "tile" + (kept ? " kept" : "");
  const img = document.createElement("img");
  img.src = `/api/images/${image.id}/thumbnail`;
  img.alt = image.path;
  img.loading = "lazy";
  const text = document.createElement("figcaption");
  text.textContent = caption;
  const path = document.createElement("span");
  path.className = "name";
  path.textContent = image.path;
  text.append(document.createElement("br"), path);
  figure.append(img, text);
  return figure;
}

async function load(event) {
  if (event) event.preventDefault();
  const params = new URLSearchParams({ threshold: $("threshold").value, extractor: $("extractor").value });
  $("status").textContent = "Comparing every pair…";
  const response = await fetch("/api/duplicates?" + params);
  const report = await response.json();
  if (!response.ok) { $("status").textContent = "Failed: " + report.error; return; }
  const copies = report.groups.reduce((n, g) => n + g.members.length, 0);
  $("status").textContent = `${report.groups.length} groups, ${copies} copies (${report.found_by.join("; ")}).`;
  $("groups").replaceChildren(...report.groups.map((group, n) => {
    const row = document.createElement("section");
    row.className = "group";
    row.setAttribute("aria-label", `group ${n + 1}`);
    row.append(tile(group.keep, `keep (${group.keep.width} x ${group.keep.height})`, true),
               ...group.members.map((m) => tile(m, `${m.reason} ${m.score.toFixed(4)}`, false)));
    return row;
  }));
}

$("options").addEventListener("submit", load);
load();
