// lookalike review page: plain JavaScript over the /v1 API (no build step, no external files).
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { info: null, thumbs: new Map() };

function token() {
  return $("#token").value || sessionStorage.getItem("lookalike-token") || "";
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const t = token();
  if (t) h["Authorization"] = "Bearer " + t;
  return h;
}

function say(msg, isError) {
  const el = $("#status");
  el.textContent = msg;
  el.dataset.state = isError ? "error" : "ok";
}

async function api(method, path, body) {
  const opts = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}) };
  if (body) opts.body = JSON.stringify(body);
  const resp = await fetch(path, opts);
  const data = resp.headers.get("content-type")?.includes("json") ? await resp.json() : null;
  if (resp.status === 401) { needToken(true); throw new Error(token() ? WRONG_TOKEN_WORDS : TOKEN_WORDS); }
  if (!resp.ok) {
    const msg = data && data.error ? data.error.message : resp.status + " " + resp.statusText;
    throw new Error(msg);
  }
  return data;
}

// The service answers 401 without its token (or with a wrong one): ask for it in plain words.
const TOKEN_WORDS = "This service needs its access token: enter it above.";
const WRONG_TOKEN_WORDS = "The access token entered above is not this service's: check it and enter it again.";
function needToken(on) {
  $("#token-prompt").hidden = !on;
  if (on) $("#token-prompt").textContent = token() ? WRONG_TOKEN_WORDS
    : TOKEN_WORDS.replace(/\.$/, " (the one given to lookalike serve --token).");
  $("#token").classList.toggle("wanted", on);
  if (on) $("#token").focus();
}

// A path for a URL: UTF-8 percent-encoded, except the bytes of a name that is not UTF-8, which the
// service sends as lone surrogates U+DC80..U+DCFF (Python's surrogate escapes) and reads back as bytes.
function encodePath(path) {
  let out = "";
  for (const ch of path) {
    const c = ch.codePointAt(0);
    if (c >= 0xdc80 && c <= 0xdcff) out += "%" + (c - 0xdc00).toString(16).toUpperCase();
    else out += encodeURIComponent(ch);
  }
  return out;
}

async function thumb(path) {
  if (state.thumbs.has(path)) return state.thumbs.get(path);
  let query;
  try { query = encodePath(path); } catch (e) { return ""; }
  const resp = await fetch("/v1/thumb?size=256&path=" + query, { headers: headers() });
  if (!resp.ok) return "";
  const url = URL.createObjectURL(await resp.blob());
  state.thumbs.set(path, url);
  return url;
}

// A long job with its bar: a progress bar (moving from the start, before the job reports a total),
// "done of total", and a Cancel button (DELETE /v1/jobs/{id}). Resolves with the finished job's
// state; rejects with an Error whose .cancelled is true when the user cancelled it.
async function runJob(route, body, box, label) {
  const bar = box.querySelector("progress"), text = box.querySelector(".job-text"), stop = box.querySelector(".cancel");
  bar.removeAttribute("value");
  text.textContent = label + ": starting…";
  box.hidden = false;
  if (stop) stop.disabled = true;
  try {
    const job = await api("POST", route, body);
    if (stop) {
      stop.disabled = false;
      stop.onclick = async () => {
        stop.disabled = true;
        text.textContent = label + ": cancelling…";
        try { await api("DELETE", "/v1/jobs/" + job.id); } catch (e) { say("cancel: " + e.message, true); }
      };
    }
    for (;;) {
      const st = await api("GET", "/v1/jobs/" + job.id);
      const p = st.progress || {};
      if (p.total) {
        bar.max = p.total; bar.value = p.done;
        if (!stop || !stop.disabled) text.textContent = `${label}: ${p.done} of ${p.total}`;
      }
      if (st.state === "done") return st;
      if (st.state === "cancelled") throw Object.assign(new Error(label + " cancelled: nothing was changed"), { cancelled: true });
      if (st.state === "failed") throw new Error(st.error);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    box.hidden = true;
    if (stop) stop.onclick = null;
  }
}

function basename(p) { return p.split("/").pop(); }

// A photo's card: its thumbnail (a click shows the photos most like it), its name, and links to
// "view" it large and to its similar photos.
function card(path, extra) {
  const div = document.createElement("div");
  div.className = "card";
  div.dataset.path = path;
  const img = document.createElement("img");
  img.alt = basename(path);
  img.title = "click: the photos most like this one";
  img.dataset.path = path;
  lazyImage(img);
  img.onclick = () => showSimilar(path);
  img.tabIndex = 0;
  img.onkeydown = (e) => { if (e.key === "Enter") { e.preventDefault(); showSimilar(path); } };
  const name = document.createElement("div");
  name.className = "name";
  name.textContent = basename(path);
  name.title = path;
  div.append(img, name);
  if (extra) div.append(extra);
  const links = document.createElement("div");
  links.className = "links";
  const view = Object.assign(document.createElement("a"), { href: "#", textContent: "view", className: "view-link" });
  view.onclick = (e) => { e.preventDefault(); openCompare([path], basename(path)); };
  const sim = Object.assign(document.createElement("a"), { href: "#", textContent: "similar", className: "similar-link" });
  sim.onclick = (e) => { e.preventDefault(); showSimilar(path); };
  links.append(view, sim);
  div.append(links);
  return div;
}

// Thumbnails are fetched as their picture comes near the screen (a folder of thousands stays quick).
const lazyObserver = new IntersectionObserver((entries) => {
  for (const e of entries) {
    if (!e.isIntersecting) continue;
    lazyObserver.unobserve(e.target);
    const img = e.target;
    thumb(img.dataset.path).then((u) => { if (u) img.src = u; });
  }
}, { rootMargin: "1200px 0px" });
function lazyImage(img) { lazyObserver.observe(img); }

function switchTab(name) {
  document.querySelectorAll(".tab").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".panel").forEach((p) => { p.hidden = p.id !== "tab-" + name; });
  if (window.onTab) window.onTab(name);
}

function folder() { return $("#folder").value; }

// The folder chosen (from the field, a sub-folder link or a tile): views that show it follow.
function chooseFolder(path) {
  $("#folder").value = path;
  browse(path);
  if (window.onFolder) window.onFolder(path);
}

async function loadModels() {
  try {
    const models = await api("GET", "/v1/models");
    const sel = $("#model"), words = { effnet: "effnet (looks alike)", phash: "phash (near copies, fast)" };
    const keep = sel.value;
    sel.textContent = "";
    state.modelKinds = new Map(models.map((m) => [m.name, m.kind]));
    for (const m of models.filter((m) => m.installed && (m.kind === "embedding" || m.kind === "hash"))) {
      sel.append(Object.assign(document.createElement("option"), { value: m.name, textContent: words[m.name] || m.name }));
    }
    sel.value = [...sel.options].some((o) => o.value === keep) ? keep : "effnet";
  } catch (e) { say("models: " + e.message, true); }
}

async function browse(path) {
  try {
    const res = await api("GET", "/v1/browse" + (path ? "?path=" + encodePath(path) : ""));
    const list = $("#folders");
    list.textContent = "";
    res.folders.forEach((f) => list.append(Object.assign(document.createElement("option"), { value: f })));
    const sub = $("#subfolders");
    sub.textContent = "";
    res.folders.slice(0, 30).forEach((f) => {
      const a = Object.assign(document.createElement("a"), { textContent: basename(f) || f, title: f });
      a.onclick = () => chooseFolder(f);
      sub.append(a);
    });
    if (!$("#folder").value && res.folders.length) $("#folder").value = res.folders[0];
  } catch (e) { say("folders: " + e.message, true); }
}

async function init() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) { sessionStorage.setItem("lookalike-token", decodeURIComponent(m[1])); history.replaceState(null, "", location.pathname); }
  $("#token").value = sessionStorage.getItem("lookalike-token") || "";
  $("#token").onchange = () => { sessionStorage.setItem("lookalike-token", $("#token").value); init(); };
  try {
    const info = await api("GET", "/v1/info");
    needToken(false);
    state.info = info;
    $("#info").textContent = `${info.roots.length} root folder${info.roots.length === 1 ? "" : "s"}; `
      + (info.allow_changes ? "changes allowed" : "read only (start with --allow-changes to move files)");
    document.body.dataset.ready = "1";
    if (window.dupesReady) window.dupesReady(info);
    if (window.peopleReady) window.peopleReady(info);
    await Promise.all([browse(null), loadModels()]);
  } catch (e) { say(e.message, true); document.body.dataset.ready = "token"; }
}

document.querySelectorAll(".tab").forEach((b) => { b.onclick = () => switchTab(b.dataset.tab); });
$("#folder").onchange = () => chooseFolder(folder());
init();
