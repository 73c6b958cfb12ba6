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

function card(path, extra) {
  const div = document.createElement("div");
  div.className = "card";
  div.dataset.path = path;
  const img = document.createElement("img");
  img.alt = basename(path);
  thumb(path).then((u) => { img.src = u; });
  const name = document.createElement("div");
  name.className = "name";
  name.textContent = basename(path);
  name.title = path;
  div.append(img, name);
  if (extra) div.append(extra);
  const sim = document.createElement("a");
  sim.href = "#";
  sim.textContent = "similar";
  sim.className = "similar-link";
  sim.onclick = (e) => { e.preventDefault(); showSimilar(path); };
  div.append(document.createTextNode(" "), sim);
  return div;
}

// ---- clusters and similar ----
async function runClusters() {
  try {
    const st = await runJob("/v1/cluster", { folder: $("#folder").value, sim: Number($("#sim").value) },
                            $("#clusters-job"), "Clustering");
    const box = $("#clusters");
    box.textContent = "";
    const clusters = st.result.clusters || [];
    clusters.forEach((c, i) => {
      const div = document.createElement("div");
      div.className = "group";
      const files = c.members || c.paths || c.files || [];
      div.append(Object.assign(document.createElement("div"), { className: "reason", textContent: `cluster ${i + 1}: ${files.length} picture(s)` }));
      const row = document.createElement("div");
      row.className = "row";
      files.forEach((f) => row.append(card(typeof f === "string" ? f : f.path)));
      div.append(row);
      box.append(div);
    });
    say(`${clusters.length} cluster(s)`);
  } catch (e) { say("clusters: " + e.message, true); }
}

async function showSimilar(path) {
  try {
    switchTab("similar");
    const box = $("#similar");
    box.textContent = "";
    $("#similar-job").hidden = false;
    let res;
    try { res = await api("POST", "/v1/similar", { path, folder: $("#folder").value, k: 8 }); }
    finally { $("#similar-job").hidden = true; }
    const row = document.createElement("div");
    row.className = "row";
    row.append(card(path, document.createTextNode("query")));
    for (const h of res.results) row.append(card(h.path, document.createTextNode(`score ${h.score.toFixed(3)}`)));
    box.append(row);
    say(`${res.results.length} similar picture(s)`);
  } catch (e) { say("similar: " + e.message, true); }
}

function switchTab(name) {
  document.querySelectorAll(".tab").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".panel").forEach((p) => { p.hidden = p.id !== "tab-" + name; });
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
      a.onclick = () => { $("#folder").value = f; browse(f); };
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
    await browse(null);
  } catch (e) { say(e.message, true); document.body.dataset.ready = "token"; }
}

document.querySelectorAll(".tab").forEach((b) => { b.onclick = () => switchTab(b.dataset.tab); });
$("#run-clusters").onclick = runClusters;
init();
