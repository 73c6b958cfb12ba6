// lookalike web app: the large compare view (uses app.js's $, headers, encodePath, basename, say).
// Photos side by side at full resolution, zoomed together (buttons, + − 0 1 keys, the wheel) and
// moved together (drag, or scroll any of them). openCompare(paths, title, options): options.caption(path)
// gives each photo's caption; options.step(±1) gives the previous / next set ({paths, title}) or null.
"use strict";

const compare = { paths: [], zoom: 0, options: {}, urls: new Map() };  // zoom 0 = fit
const ZOOMS = [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8];

async function fullImage(path) {
  if (compare.urls.has(path)) return compare.urls.get(path);
  const resp = await fetch("/v1/photo?path=" + encodePath(path), { headers: headers() });
  if (!resp.ok) return "";
  const url = URL.createObjectURL(await resp.blob());
  compare.urls.set(path, url);
  return url;
}

function panes() { return [...document.querySelectorAll("#compare-panes .pane")]; }

function fitScale() {
  // the scale at which every photo fits its pane (the smallest of them)
  let s = Infinity;
  for (const p of panes()) {
    const img = p.querySelector("img");
    if (!img.naturalWidth) continue;
    s = Math.min(s, p.clientWidth / img.naturalWidth, p.clientHeight / img.naturalHeight);
  }
  return Number.isFinite(s) ? s : 1;
}

function applyZoom(centre) {
  const z = compare.zoom;
  $("#zoom-level").textContent = z ? `${Math.round(z * 100)}%` : "fit";
  for (const p of panes()) {
    const img = p.querySelector("img");
    const fx = centre ? centre.fx : 0.5, fy = centre ? centre.fy : 0.5;
    if (!z) {
      img.classList.add("fit");
      img.style.width = img.style.height = "";
    } else {
      img.classList.remove("fit");
      img.style.width = `${Math.round((img.naturalWidth || 0) * z)}px`;
      img.style.height = `${Math.round((img.naturalHeight || 0) * z)}px`;
      p.scrollLeft = fx * p.scrollWidth - p.clientWidth / 2;
      p.scrollTop = fy * p.scrollHeight - p.clientHeight / 2;
    }
  }
}

function zoomBy(step, centre) {
  const now = compare.zoom || fitScale();
  let next;
  if (step > 0) next = ZOOMS.find((z) => z > now + 1e-6) || ZOOMS[ZOOMS.length - 1];
  else next = [...ZOOMS].reverse().find((z) => z < now - 1e-6) || ZOOMS[0];
  compare.zoom = step < 0 && next <= fitScale() ? 0 : next;
  applyZoom(centre);
}

function zoomTo(z) { compare.zoom = z; applyZoom(); }

// Scrolling (or dragging) one photo moves the others to the same place.
let syncing = false;
function syncFrom(src) {
  if (syncing) return;
  syncing = true;
  const fx = (src.scrollLeft + src.clientWidth / 2) / (src.scrollWidth || 1);
  const fy = (src.scrollTop + src.clientHeight / 2) / (src.scrollHeight || 1);
  for (const p of panes()) {
    if (p === src) continue;
    p.scrollLeft = fx * p.scrollWidth - p.clientWidth / 2;
    p.scrollTop = fy * p.scrollHeight - p.clientHeight / 2;
  }
  requestAnimationFrame(() => { syncing = false; });
}

function pane(path) {
  const div = document.createElement("div");
  div.className = "pane";
  div.dataset.path = path;
  const img = document.createElement("img");
  img.className = "fit";
  img.alt = basename(path);
  img.draggable = false;
  img.onload = () => applyZoom();
  fullImage(path).then((u) => { if (u) img.src = u; });
  div.append(img);
  div.onscroll = () => syncFrom(div);
  div.onwheel = (e) => {
    e.preventDefault();
    const r = div.getBoundingClientRect();
    zoomBy(e.deltaY < 0 ? 1 : -1, { fx: (div.scrollLeft + e.clientX - r.left) / (div.scrollWidth || 1),
                                    fy: (div.scrollTop + e.clientY - r.top) / (div.scrollHeight || 1) });
  };
  div.onmousedown = (e) => {
    const x0 = e.clientX, y0 = e.clientY, l0 = div.scrollLeft, t0 = div.scrollTop;
    const move = (m) => { div.scrollLeft = l0 - (m.clientX - x0); div.scrollTop = t0 - (m.clientY - y0); };
    const up = () => { window.removeEventListener("mousemove", move); window.removeEventListener("mouseup", up); };
    window.addEventListener("mousemove", move);
    window.addEventListener("mouseup", up);
    e.preventDefault();
  };
  const cap = document.createElement("div");
  cap.className = "caption";
  cap.textContent = compare.options.caption ? compare.options.caption(path) : basename(path);
  cap.title = path;
  const box = document.createElement("figure");
  box.className = "pane-box";
  box.append(div, cap);
  return box;
}

function showSet(paths, title) {
  compare.paths = paths;
  compare.zoom = 0;
  $("#compare-title").textContent = title || "";
  const box = $("#compare-panes");
  box.textContent = "";
  box.style.setProperty("--n", String(Math.min(paths.length, 4)));
  for (const p of paths) box.append(pane(p));
  $("#compare-prev").hidden = $("#compare-next").hidden = !compare.options.step;
  applyZoom();
}

function step(dir) {
  if (!compare.options.step) return;
  const next = compare.options.step(dir);
  if (next) showSet(next.paths, next.title); else say(dir > 0 ? "That was the last group" : "That is the first group");
}

function openCompare(paths, title, options) {
  compare.options = options || {};
  const dlg = $("#compare");
  if (!dlg.open) dlg.showModal();
  showSet(paths, title);
  $("#compare-close").focus();
}

function closeCompare() {
  const dlg = $("#compare");
  if (dlg.open) dlg.close();
}

$("#zoom-in").onclick = () => zoomBy(1);
$("#zoom-out").onclick = () => zoomBy(-1);
$("#zoom-fit").onclick = () => zoomTo(0);
$("#zoom-actual").onclick = () => zoomTo(1);
$("#compare-prev").onclick = () => step(-1);
$("#compare-next").onclick = () => step(1);
$("#compare-close").onclick = closeCompare;
$("#compare").addEventListener("close", () => { if (compare.options.onClose) compare.options.onClose(); });
$("#compare").addEventListener("keydown", (e) => {
  const acts = {
    "+": () => zoomBy(1), "=": () => zoomBy(1), "-": () => zoomBy(-1), "0": () => zoomTo(0), "1": () => zoomTo(1),
    ArrowRight: () => step(1), ArrowLeft: () => step(-1),
  };
  if (!(e.key in acts) || e.ctrlKey || e.metaKey || e.altKey) return;
  e.preventDefault();
  e.stopPropagation();
  acts[e.key]();
});
window.addEventListener("resize", () => { if ($("#compare").open) applyZoom(); });
