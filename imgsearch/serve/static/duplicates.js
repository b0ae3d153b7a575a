// Each group of copies as a row of thumbnails: the image kept first, then each copy with
// its score to it. A group opens large (the kept image and a copy side by side); copies are
// selected for removal and the list downloaded. Groups of photographs of one scene (not
// copies of each other) follow, apart, with nothing to select. Reads /api/stats and
// /api/duplicates only.
"use strict";

const $ = (id) => document.getElementById(id);
let groups = [];
let open = null; // {group, member}: what the viewer shows

function tile(image, caption, kept, group, member, scene = false) {
  const figure = document.createElement("figure");
  figure.className = "tile" + (kept ? " kept" : "");
  const view = document.createElement("button");
  view.type = "button";
  view.className = "view";
  view.title = "Open this group large";
  const img = document.createElement("img");
  img.src = `/api/images/${image.id}/thumbnail`;
  img.alt = image.path;
  img.loading = "lazy";
  view.append(img);
  view.addEventListener("click", () => show(group, Math.max(member, 0)));
  const text = document.createElement("figcaption");
  const choose = document.createElement("label");
  if (scene) {
    choose.textContent = "a photograph of its own";
  } else {
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = !kept; // every copy but the one kept, as `duplicates --to-remove`
    box.dataset.path = image.path;
    box.addEventListener("change", counted);
    choose.append(box, " remove");
  }
  const path = document.createElement("span");
  path.className = "name";
  path.textContent = image.path;
  const search = document.createElement("a");
  search.href = "/#name=" + encodeURIComponent(image.path);
  search.textContent = "search";
  search.title = "Search the collection with " + image.path;
  text.append(caption, document.createElement("br"), path, document.createElement("br"), choose, " · ", search);
  figure.append(view, text);
  return figure;
}

function selected() {
  return [...document.querySelectorAll("#groups input[type=checkbox]:checked")].map((b) => b.dataset.path);
}

function counted() {
  const n = selected().length;
  $("selection").hidden = groups.length === 0;
  $("selected").textContent = `${n.toLocaleString()} selected to remove.`;
}

function download(name, type, text) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = name;
  link.click();
  URL.revokeObjectURL(link.href);
}

function csvField(text) {
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function show(group, member) {
  const g = groups[group];
  if (!g.members.length) return;
  open = { group, member: (member + g.members.length) % g.members.length };
  const copy = g.members[open.member];
  $("left").src = `/api/images/${g.keep.id}/file`;
  $("left").alt = g.keep.path;
  const scene = group >= groups.length - (groups.sceneCount || 0);
  $("left-caption").textContent = `${scene ? "photograph" : "keep"}: ${g.keep.path} (${g.keep.width} x ${g.keep.height})`;
  $("right").src = `/api/images/${copy.id}/file`;
  $("right").alt = copy.path;
  $("right-caption").textContent = `${copy.reason} ${copy.score.toFixed(4)}: ${copy.path} (${copy.width} x ${copy.height}), ` +
                                   `${scene ? "photograph" : "copy"} ${open.member + 1} of ${g.members.length}`;
  $("previous").disabled = $("next").disabled = g.members.length < 2;
  if (!$("viewer").open) $("viewer").showModal();
}

async function load(event) {
  if (event) event.preventDefault();
  const params = new URLSearchParams({ threshold: $("threshold").value });
  if ($("extractor").value) params.set("extractor", $("extractor").value);
  $("status").textContent = "Comparing every pair…";
  $("status").classList.remove("error");
  let response, report;
  try {
    response = await fetch("/api/duplicates?" + params);
    report = await response.json();
  } catch (e) {
    response = null;
  }
  if (!response || !response.ok) {
    groups = [];
    $("groups").replaceChildren();
    $("status").textContent = response ? "Failed: " + report.error : "The server cannot be reached.";
    $("status").classList.add("error");
    counted();
    return;
  }
  groups = [...report.groups, ...report.same_scene];
  groups.sceneCount = report.same_scene.length;
  const copies = report.groups.reduce((n, g) => n + g.members.length, 0);
  const scenes = report.same_scene.length
    ? ` ${report.same_scene.length} groups of photographs of one scene, none a copy of another: keep them all.` : "";
  $("status").textContent = `${report.groups.length} groups, ${copies} copies (${report.found_by.join("; ")}).${scenes}`;
  $("groups").replaceChildren(...groups.map((group, n) => {
    const scene = n >= report.groups.length;
    const row = document.createElement("section");
    row.className = "group" + (scene ? " scene" : "");
    row.setAttribute("aria-label", scene ? `group ${n + 1}, same scene` : `group ${n + 1}`);
    const first = scene ? `same scene (${group.keep.width} x ${group.keep.height})`
      : `keep (${group.keep.width} x ${group.keep.height})`;
    row.append(tile(group.keep, first, !scene, n, 0, scene),
               ...group.members.map((m, i) => tile(m, scene ? `same scene ${m.score.toFixed(4)}`
                 : `${m.reason} ${m.score.toFixed(4)}`, false, n, i, scene)));
    return row;
  }));
  counted();
}

async function init() {
  try {
    const response = await fetch("/api/stats");
    const stats = await response.json();
    for (const name of Object.keys(stats.extractors)) {
      $("extractor").append(new Option(name, name, false, name === stats.default_extractor));
    }
  } catch (e) {
    // the report below says what is wrong
  }
  load();
}

$("options").addEventListener("submit", load);
$("download-csv").addEventListener("click", () =>
  download("to-remove.csv", "text/csv", "path\n" + selected().map(csvField).join("\n") + "\n"));
$("download-json").addEventListener("click", () =>
  download("to-remove.json", "application/json", JSON.stringify({ to_remove: selected() }, null, 1)));
$("previous").addEventListener("click", () => show(open.group, open.member - 1));
$("next").addEventListener("click", () => show(open.group, open.member + 1));
$("close").addEventListener("click", () => $("viewer").close());
init();
