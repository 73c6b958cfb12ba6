// lookalike review page: plain JavaScript over the /v1 API (no build step, no external files).
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { dupesJob: null, groups: [], journal: null, thumbs: new Map() };

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
  if (!resp.ok) {
    const msg = data && data.error ? data.error.message : resp.status + " " + resp.statusText;
    throw new Error(msg);
  }
  return data;
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

async function runJob(route, body, bar) {
  const job = await api("POST", route, body);
  bar.hidden = false;
  for (;;) {
    const st = await api("GET", "/v1/jobs/" + job.id);
    if (st.progress.total) { bar.max = st.progress.total; bar.value = st.progress.done; }
    say(`${st.kind}: ${st.state} ${st.progress.done}/${st.progress.total}`);
    if (st.state === "done") { bar.hidden = true; return st; }
    if (st.state === "failed" || st.state === "cancelled") { bar.hidden = true; throw new Error(st.error); }
    await new Promise((r) => setTimeout(r, 200));
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

// ---- duplicates ----
function renderGroups() {
  const box = $("#groups");
  box.textContent = "";
  state.groups.forEach((g, gi) => {
    const div = document.createElement("div");
    div.className = "group";
    div.dataset.group = gi;
    const reason = document.createElement("div");
    reason.className = "reason";
    reason.textContent = `group ${gi + 1}: keeper chosen because ${g.reason}`;
    const row = document.createElement("div");
    row.className = "row";
    const files = [{ path: g.keep, tier: "", score: null }, ...g.members];
    for (const f of files) {
      const ctl = document.createElement("div");
      const keep = document.createElement("input");
      keep.type = "radio"; keep.name = "keep-" + gi; keep.className = "keep"; keep.checked = f.path === g.chosen;
      // the former keeper becomes a duplicate (ticked for the trash); the new keeper is never acted on
      keep.onchange = () => { g.ticked.add(g.chosen); g.chosen = f.path; g.ticked.delete(f.path); renderGroups(); };
      const tick = document.createElement("input");
      tick.type = "checkbox"; tick.className = "tick"; tick.disabled = f.path === g.chosen;
      tick.checked = g.ticked.has(f.path);
      tick.onchange = () => { tick.checked ? g.ticked.add(f.path) : g.ticked.delete(f.path); renderGroups(); };
      const l1 = document.createElement("label"); l1.append(keep, " keep");
      const l2 = document.createElement("label"); l2.append(tick, " to trash");
      ctl.append(l1, " ", l2);
      if (f.tier) ctl.append(document.createTextNode(` ${f.tier} ${f.score}`));
      const c = card(f.path, ctl);
      if (f.path === g.chosen) c.classList.add("keeper");
      else if (g.ticked.has(f.path)) c.classList.add("doomed");
      row.append(c);
    }
    div.append(reason, row);
    box.append(div);
  });
  $("#apply").disabled = !state.groups.some((g) => g.ticked.size);
}

async function runDupes() {
  try {
    state.journal = null;
    $("#undo").disabled = true;
    const st = await runJob("/v1/dupes", { folder: $("#folder").value, tier: $("#tier").value }, $("#dupes-progress"));
    state.dupesJob = st.id;
    state.groups = st.result.groups.map((g) => ({
      keep: g.keep, reason: g.reason, members: g.members, chosen: g.keep,
      ticked: new Set(g.members.map((m) => m.path)),
    }));
    renderGroups();
    const n = state.groups.reduce((a, g) => a + g.members.length, 0);
    say(`${state.groups.length} group(s), ${n} duplicate(s)` + (st.result.errors.length ? `, ${st.result.errors.length} unreadable` : ""));
  } catch (e) { say("duplicates: " + e.message, true); }
}

async function applyTrash() {
  try {
    const groups = state.groups.map((g) => ({ keep: g.chosen, members: [...g.ticked].filter((p) => p !== g.chosen) }));
    const { plan, operations, skipped } = await api("POST", "/v1/dupes/plan", { job: state.dupesJob, action: "trash", groups });
    const left = skipped && skipped.length ? `${skipped.length} file(s) left out: ${skipped[0].path} ${skipped[0].reason}` : "";
    if (!operations) { say(left ? "nothing to do, " + left : "nothing is ticked", !!left); return; }
    const rep = await api("POST", "/v1/plans/apply", { plan });
    state.journal = rep.id;
    $("#undo").disabled = false;
    $("#apply").disabled = true;
    say(`moved ${rep.done} file(s) to the trash` + (rep.failed.length ? `, ${rep.failed.length} failed` : "") + ` (journal ${rep.id})`
        + (left ? "; " + left : ""));
  } catch (e) { say("apply: " + e.message, true); }
}

async function undo() {
  try {
    const rep = await api("POST", "/v1/undo", { journal: state.journal });
    $("#undo").disabled = true;
    say(`undone: ${rep.undone} file(s) restored` + (rep.problems.length ? `, ${rep.problems.length} problem(s)` : ""));
  } catch (e) { say("undo: " + e.message, true); }
}

// ---- clusters and similar ----
async function runClusters() {
  try {
    const st = await runJob("/v1/cluster", { folder: $("#folder").value, sim: Number($("#sim").value) },
                            $("#clusters-progress"));
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
    const res = await api("POST", "/v1/similar", { path, folder: $("#folder").value, k: 8 });
    const box = $("#similar");
    box.textContent = "";
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
    $("#info").textContent = `roots: ${info.roots.length}; changes ${info.allow_changes ? "allowed" : "off"}`;
    document.body.dataset.ready = "1";
    await browse(null);
  } catch (e) { say(e.message, true); }
}

document.querySelectorAll(".tab").forEach((b) => { b.onclick = () => switchTab(b.dataset.tab); });
$("#run-dupes").onclick = runDupes;
$("#apply").onclick = applyTrash;
$("#undo").onclick = undo;
$("#run-clusters").onclick = runClusters;
init();
