// lookalike web app: the folder browser (photo grid), Similar (by clicking a photo or dropping one) and
// Clusters (uses app.js's $, api, headers, say, card, runJob, switchTab, chooseFolder, folder).
"use strict";

function plural2(n, one, many) { return `${n} ${n === 1 ? one : (many || one + "s")}`; }

// ---- the folder browser: sub-folder tiles and a grid of the folder's photos ----
const photosView = { shown: null };

async function showPhotos(path) {
  path = path || folder();
  if (!path) return;
  try {
    const res = await api("GET", "/v1/photos?path=" + encodePath(path));
    photosView.shown = path;
    $("#photos-where").textContent = `${res.path}: ${plural2(res.photos.length, "photo")}`
      + (res.truncated ? " (the first ones)" : "") + (res.folders.length ? `, ${plural2(res.folders.length, "folder")}` : "");
    const tiles = $("#photos-folders");
    tiles.textContent = "";
    const up = res.path.replace(/\/[^/]+$/, "") || "/";
    if (state.info && state.info.roots.some((r) => (up === r || up.startsWith(r + "/")) && up !== res.path)) {
      tiles.append(folderTile(up, "⬑ up"));
    }
    res.folders.forEach((f) => tiles.append(folderTile(f)));
    const grid = $("#photos");
    grid.textContent = "";
    res.photos.forEach((p) => grid.append(card(p)));
    if (!res.photos.length) grid.append(Object.assign(document.createElement("p"), { className: "note", textContent: "No photos directly in this folder." }));
  } catch (e) { say("photos: " + e.message, true); }
}

function folderTile(path, label) {
  const a = Object.assign(document.createElement("a"), { href: "#", className: "folder-tile", title: path,
                                                         textContent: label || ("▸ " + basename(path)) });
  a.onclick = (e) => { e.preventDefault(); chooseFolder(path); };
  return a;
}

// ---- similar: a photo of the folder (clicked) or one from the computer (dropped or chosen) ----
async function showSimilar(pathOrFile) {
  const isFile = typeof pathOrFile !== "string";
  switchTab("similar");
  const box = $("#similar");
  box.textContent = "";
  $("#similar-job").hidden = false;
  try {
    let res;
    try {
      if (isFile) {
        const form = new FormData();
        form.append("file", pathOrFile, pathOrFile.name || "upload");
        form.append("folder", folder());
        form.append("k", "8");
        form.append("model", $("#model").value);
        const resp = await fetch("/v1/similar", { method: "POST", headers: headers(), body: form });
        const data = await resp.json().catch(() => null);
        if (resp.status === 401) { needToken(true); throw new Error(token() ? WRONG_TOKEN_WORDS : TOKEN_WORDS); }
        if (!resp.ok) throw new Error(data && data.error ? data.error.message : resp.status + " " + resp.statusText);
        res = data;
      } else {
        res = await api("POST", "/v1/similar", { path: pathOrFile, folder: folder(), k: 8, model: $("#model").value });
      }
    } finally { $("#similar-job").hidden = true; }
    const row = document.createElement("div");
    row.className = "row";
    if (isFile) {
      const q = document.createElement("div");
      q.className = "card query";
      q.dataset.testid = "query";
      const img = Object.assign(document.createElement("img"), { alt: pathOrFile.name, src: URL.createObjectURL(pathOrFile) });
      q.append(img, Object.assign(document.createElement("div"), { className: "name", textContent: pathOrFile.name }),
               document.createTextNode("your photo"));
      row.append(q);
    } else {
      const q = card(pathOrFile, document.createTextNode("your photo"));
      q.classList.add("query");
      row.append(q);
    }
    // a hash model's score is how many bits of the two hashes differ; an embedding's, how alike (cosine)
    const isHash = state.modelKinds && state.modelKinds.get(res.model) === "hash";
    const words = (s) => (isHash ? (s ? `${plural2(s, "bit")} apart` : "same hash") : `${(s * 100).toFixed(1)}% alike`);
    for (const h of res.results) {
      const c = card(h.path, Object.assign(document.createElement("div"), { className: "score", textContent: words(h.score) }));
      c.classList.add("hit");
      row.append(c);
    }
    box.append(row);
    say(`${plural2(res.results.length, "similar photo")} in ${folder()}`);
  } catch (e) { say("similar: " + e.message, true); }
}

function droppedFile(e) {
  const dt = e.dataTransfer;
  if (!dt) return null;
  const files = [...(dt.files || [])].filter((f) => !f.type || f.type.startsWith("image/"));
  return files[0] || null;
}

// Dropping a photo anywhere on the page shows the photos most like it (the drop zone lights up).
document.addEventListener("dragover", (e) => {
  if (!e.dataTransfer || ![...e.dataTransfer.types].includes("Files")) return;
  e.preventDefault();
  $("#drop").classList.add("over");
});
document.addEventListener("dragleave", (e) => { if (!e.relatedTarget) $("#drop").classList.remove("over"); });
document.addEventListener("drop", (e) => {
  $("#drop").classList.remove("over");
  const f = droppedFile(e);
  if (!f && !(e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files.length)) return;
  e.preventDefault();
  if (!f) { say("That is not a photo: drop a picture file", true); return; }
  showSimilar(f);
});
$("#drop-file").onchange = () => { const f = $("#drop-file").files[0]; if (f) showSimilar(f); $("#drop-file").value = ""; };

// ---- clusters, with their sizes ----
async function runClusters() {
  const body = { folder: folder(), model: $("#model").value };
  const sim = $("#sim").value;
  if (sim !== "") body.sim = Number(sim);
  try {
    $("#run-clusters").disabled = true;
    $("#clusters").textContent = "";
    $("#clusters-summary").textContent = "";
    const st = await runJob("/v1/cluster", body, $("#clusters-job"), "Clustering");
    const clusters = (st.result.clusters || []).map((c) => (c.members || []).map((f) => (typeof f === "string" ? f : f.path)));
    const alone = st.result.unclustered || [];
    const box = $("#clusters");
    // the sizes first, as imagecluster prints them: how many clusters of each size
    const counts = new Map();
    clusters.forEach((c) => counts.set(c.length, (counts.get(c.length) || 0) + 1));
    const table = document.createElement("table");
    table.className = "sizes";
    table.dataset.testid = "cluster-sizes";
    table.innerHTML = "<thead><tr><th>photos in a cluster</th><th>clusters</th></tr></thead>";
    const tb = document.createElement("tbody");
    [...counts.entries()].sort((a, b) => b[0] - a[0]).forEach(([size, n]) => {
      const tr = document.createElement("tr");
      tr.append(Object.assign(document.createElement("td"), { textContent: String(size) }),
                Object.assign(document.createElement("td"), { textContent: String(n) }));
      tb.append(tr);
    });
    table.append(tb);
    const total = clusters.reduce((a, c) => a + c.length, 0);
    $("#clusters-summary").textContent = `${plural2(clusters.length, "cluster")} holding ${plural2(total, "photo")}; `
      + `${plural2(alone.length, "photo")} like no other.`;
    $("#clusters-summary").append(table);
    clusters.forEach((files, i) => {
      const div = document.createElement("div");
      div.className = "group cluster";
      div.dataset.size = String(files.length);
      const head = Object.assign(document.createElement("div"), { className: "reason" });
      head.append(Object.assign(document.createElement("strong"), { textContent: `Cluster ${i + 1} · ${plural2(files.length, "photo")}` }));
      const row = document.createElement("div");
      row.className = "row";
      files.forEach((f) => row.append(card(f)));
      div.append(head, row);
      box.append(div);
    });
    if (alone.length) {
      const div = document.createElement("div");
      div.className = "group alone";
      div.append(Object.assign(document.createElement("div"), { className: "reason", textContent: `On their own · ${plural2(alone.length, "photo")}` }));
      const row = document.createElement("div");
      row.className = "row";
      alone.forEach((f) => row.append(card(f)));
      div.append(row);
      box.append(div);
    }
    say(`${plural2(clusters.length, "cluster")} found`);
  } catch (e) { say(e.cancelled ? e.message : "clusters: " + e.message, !e.cancelled); }
  finally { $("#run-clusters").disabled = false; }
}
$("#run-clusters").onclick = runClusters;

window.onTab = (name) => { if (name === "photos" && photosView.shown !== folder()) showPhotos(folder()); };
window.onFolder = (path) => { if (!$("#tab-photos").hidden) showPhotos(path); };
