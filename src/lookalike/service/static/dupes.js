// lookalike review page: the duplicates review (uses app.js's $, api, say, thumb, lazyImage, runJob, showSimilar).
"use strict";

const review = {
  job: null,        // the finished duplicates job's id (the plan route checks the review against it)
  groups: [],       // [{keep, reason, facts: Map(path -> facts), match: Map(path -> {tier, score}), chosen, marked: Set}]
  cursor: null,     // the path of the photo the keyboard acts on
  undo: null,       // {journal, count, before: snapshot of groups} after a move, until undone
};

// ---- words ----
function plural(n, one, many) { return `${n} ${n === 1 ? one : (many || one + "s")}`; }

function bytesWords(n) {
  if (!n) return "?";
  const units = ["bytes", "KB", "MB", "GB"];
  let i = 0, v = n;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return i ? `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}` : `${n} bytes`;
}

function matchWords(m) {
  if (!m) return "";
  if (m.tier === "exact") return "exact copy";
  if (m.tier === "pixel") return "same pixels";
  return `${m.tier === "near" ? "near copy" : "similar"} · ${(m.score * 100).toFixed(1)}%`;
}

// The keeper choice (dupes/keeper.py) names each criterion that narrowed the group, in order; say
// each one as a person would. Unknown wording is shown as it is.
const REASONS = [
  [/^in a --keep-in folder$/, () => "it is in a folder you protect (--keep-in)"],
  [/^complete file/, () => "it is complete (another copy is cut short)"],
  [/^highest resolution \((\d+)x(\d+)\)$/, (m) => `it has the most pixels (${m[1]} × ${m[2]})`],
  [/^largest file \(([\d,]+) bytes\)$/, (m) => `it is the largest file (${m[1]} bytes), the least compressed`],
  [/^better format \(([^,]+), lossless\)$/, (m) => `it is stored without loss (${m[1]})`],
  [/^richest EXIF \((\d+) tags\)$/, (m) => `it keeps the most camera details (${m[1]} EXIF tags)`],
  [/^sharpest$/, () => "it is the sharpest"],
  [/^other names link to it \((\d+)/, (m) => `${plural(Number(m[1]), "link")} point${m[1] === "1" ? "s" : ""} to it, so keeping it keeps them working`],
  [/^oldest \(by modification time\)$/, () => "it was saved first"],
  [/^oldest \((.+)\)$/, (m) => `it was taken first (${m[1].slice(0, 10).replace(/:/g, "-")} ${m[1].slice(11, 16)})`],
  [/^shortest path$/, () => "it has the shortest path"],
  [/^first by name/, () => "it comes first by name"],
  [/^only candidate$/, () => "it is the only real file (the others are links to it)"],
  [/^chosen in review$/, () => "you chose it"],
];
const TIE_BREAKS = /^(shortest path|first by name|oldest \(by modification time\))/;

function reasonWords(g) {
  if (g.chosen !== g.keep) return `You chose ${basename(g.chosen)} as the keeper.`;
  const parts = String(g.reason || "").split("; ").filter(Boolean);
  const said = parts.map((p) => { for (const [re, fn] of REASONS) { const m = p.match(re); if (m) return fn(m); } return p; });
  let why = said.join(", and of those ");
  if (parts.length && TIE_BREAKS.test(parts[0])) {
    why = "the copies are alike in resolution, size, format and date; " + why;
  }
  return `Keeps ${basename(g.keep)}: ${why}.`;
}

// ---- state ----
function fromResult(result) {
  return result.groups.map((g) => {
    const facts = new Map([[g.keep, g.keep_facts || {}]]);
    const match = new Map();
    for (const m of g.members) { facts.set(m.path, m.facts || {}); match.set(m.path, { tier: m.tier, score: m.score }); }
    return { keep: g.keep, reason: g.reason, facts, match, paths: [g.keep, ...g.members.map((m) => m.path)],
             chosen: g.keep, marked: new Set(g.members.map((m) => m.path)) };
  });
}

function snapshot() {
  return review.groups.map((g) => ({ ...g, paths: [...g.paths], marked: new Set(g.marked) }));
}

function markedCount() { return review.groups.reduce((a, g) => a + g.marked.size, 0); }

function keepBest() {
  for (const g of review.groups) { g.chosen = g.keep; g.marked = new Set(g.paths.filter((p) => p !== g.keep)); }
  renderGroups();
  say(`Back to the proposed keepers: ${plural(markedCount(), "file")} marked for the trash`);
}

function makeKeeper(g, path) {
  if (g.chosen === path) return;
  g.marked.add(g.chosen);  // the former keeper becomes a duplicate, marked for the trash
  g.chosen = path;
  g.marked.delete(path);   // the keeper is never acted on
  review.cursor = path;
  say("");
  refreshGroup(g);
}

function toggleMark(g, path) {
  if (path === g.chosen) { say("That is the keeper: keep another photo first (K) to move this one", true); return; }
  if (g.marked.has(path)) g.marked.delete(path); else g.marked.add(path);
  review.cursor = path;
  say("");
  refreshGroup(g);
}

// ---- view ----
function factRow(dl, label, value, best) {
  const dt = document.createElement("dt"); dt.textContent = label;
  const dd = document.createElement("dd"); dd.textContent = value;
  if (best) dd.classList.add("best");
  dl.append(dt, dd);
  return dd;
}

function dupeCard(g, gi, path) {
  const f = g.facts.get(path) || {};
  const isKeeper = path === g.chosen, marked = g.marked.has(path);
  const div = document.createElement("div");
  div.className = "card dupe " + (isKeeper ? "keeper" : marked ? "doomed" : "spared");
  div.dataset.path = path;
  div.tabIndex = 0;
  div.onfocus = () => { review.cursor = path; };

  const badge = document.createElement("div");
  badge.className = "badge";
  badge.textContent = isKeeper ? "keep" : marked ? "to the trash" : "stays (unmarked)";

  const img = document.createElement("img");
  img.alt = basename(path);
  img.title = "click (or Enter): compare this group large, with zoom";
  img.dataset.path = path;
  img.onclick = () => compareGroup(gi, path);
  lazyImage(img);  // app.js: fetched as the card comes near the screen (hundreds of groups stay quick)

  const name = document.createElement("div");
  name.className = "name"; name.textContent = basename(path); name.title = path;
  const dir = document.createElement("div");
  dir.className = "dir"; dir.textContent = path.slice(0, path.length - basename(path).length); dir.title = path;

  // best values of the group are bold, so the difference shows at a glance
  const all = g.paths.map((p) => g.facts.get(p) || {});
  const px = (x) => (x.width || 0) * (x.height || 0);
  const maxPx = Math.max(...all.map(px)), maxBytes = Math.max(...all.map((x) => x.bytes || 0));
  const differs = (fn) => new Set(all.map(fn)).size > 1;
  const dl = document.createElement("dl");
  dl.className = "facts";
  factRow(dl, "resolution", f.width ? `${f.width} × ${f.height}` : "?", differs(px) && px(f) === maxPx);
  factRow(dl, "size", f.bytes ? bytesWords(f.bytes) : "?", differs((x) => x.bytes) && f.bytes === maxBytes)
    .title = f.bytes ? f.bytes.toLocaleString("en") + " bytes" : "";
  factRow(dl, "format", f.format || "?");
  factRow(dl, "taken", f.taken ? f.taken.slice(0, 16) : (f.modified ? "saved " + f.modified.slice(0, 10) : "?"))
    .title = f.modified ? "file modified " + f.modified : "";
  factRow(dl, "match", path === g.keep ? "proposed keeper" : matchWords(g.match.get(path)));

  const ctl = document.createElement("div");
  ctl.className = "controls";
  const keep = document.createElement("input");
  keep.type = "radio"; keep.name = "keep-" + gi; keep.className = "keep"; keep.checked = isKeeper;
  keep.onchange = () => makeKeeper(g, path);
  const tick = document.createElement("input");
  tick.type = "checkbox"; tick.className = "tick"; tick.disabled = isKeeper; tick.checked = marked;
  tick.onchange = () => toggleMark(g, path);
  const l1 = document.createElement("label"); l1.append(keep, "\u00a0keep");
  const l2 = document.createElement("label"); l2.append(tick, "\u00a0to\u00a0trash");
  const sim = document.createElement("a");
  sim.href = "#"; sim.textContent = "similar"; sim.className = "similar-link";
  sim.onclick = (e) => { e.preventDefault(); showSimilar(path); };
  ctl.append(l1, l2, sim);

  div.append(badge, img, name, dir, dl, ctl);
  return div;
}

function groupBox(g, gi) {
  const div = document.createElement("div");
  div.className = "group";
  div.dataset.group = gi;
  const head = document.createElement("div");
  head.className = "reason";
  const title = document.createElement("strong");
  title.textContent = `Group ${gi + 1} · ${plural(g.paths.length, "photo")} · `;
  head.append(title, reasonWords(g));
  const row = document.createElement("div");
  row.className = "row";
  for (const p of g.paths) row.append(dupeCard(g, gi, p));
  div.append(head, row);
  return div;
}

// Everything (after a search, a move, an undo, "keep best").
function renderGroups() {
  const box = $("#groups");
  box.textContent = "";
  review.groups.forEach((g, gi) => box.append(groupBox(g, gi)));
  renderTotals();
}

// One group (a keeper changed, a photo marked or unmarked): the others stay as they are.
function refreshGroup(g) {
  const gi = review.groups.indexOf(g);
  const old = document.querySelector(`#groups .group[data-group="${gi}"]`);
  if (gi < 0 || !old) { renderGroups(); return; }
  const refocus = document.activeElement && old.contains(document.activeElement);
  old.replaceWith(groupBox(g, gi));
  renderTotals(refocus);
}

function renderTotals(refocus) {
  const n = markedCount();
  const canChange = !state.info || state.info.allow_changes;
  $("#apply").disabled = !n || !canChange;
  $("#apply").textContent = n ? `Move ${plural(n, "marked file")} to the trash…` : "Move marked files to the trash…";
  $("#apply-note").textContent = canChange ? "" : "Read only: start the service with --allow-changes to move files.";
  $("#keep-best").disabled = !review.groups.length;
  const k = review.groups.length;
  $("#dupes-summary").textContent = k
    ? `${plural(k, "group")}: ${plural(n, "file")} marked for the trash; `
      + `${plural(k, "keeper")} stay${k === 1 ? "s" : ""} where ${k === 1 ? "it is" : "they are"}.`
    : (review.job ? "No duplicates left to review." : "");
  if (review.cursor && (refocus || (document.activeElement && document.activeElement.closest
                                    && document.activeElement.closest("#groups")))) {
    const c = cards().find((el) => el.dataset.path === review.cursor);
    if (c) c.focus();
  }
}

// ---- actions ----
async function runDupes() {
  try {
    // a move done before stays undoable (its Undo button stays) while another search runs
    review.job = null; review.groups = [];
    $("#run-dupes").disabled = true;
    renderGroups();
    const st = await runJob("/v1/dupes", { folder: $("#folder").value, tier: $("#tier").value }, $("#dupes-job"),
                            "Finding duplicates");
    review.job = st.id;
    review.groups = fromResult(st.result);
    renderGroups();
    const errs = st.result.errors.length;
    say(`${plural(review.groups.length, "group")} of duplicates found` + (errs ? `; ${plural(errs, "file")} could not be read` : ""));
  } catch (e) { say(e.cancelled ? e.message : "duplicates: " + e.message, !e.cancelled); }
  finally { $("#run-dupes").disabled = false; }
}

// A modal question; resolves true only when its OK button was pressed (Cancel and Esc: false).
function ask(question, detail, ok) {
  const dlg = $("#confirm");
  $("#confirm-text").textContent = question;
  $("#confirm-detail").textContent = detail;
  $("#confirm-ok").textContent = ok;
  // answered from the buttons themselves: a dialog's "close" event comes later, and could be taken
  // for the answer to the next question
  return new Promise((resolve) => {
    let settled = false;
    const finish = (yes) => {
      if (settled) return;
      settled = true;
      if (dlg.open) dlg.close();
      resolve(yes);
    };
    $("#confirm-ok").onclick = () => finish(true);
    $("#confirm-cancel").onclick = () => finish(false);
    dlg.oncancel = () => finish(false);  // Esc
    dlg.showModal();
    $("#confirm-cancel").focus();
  });
}

async function applyTrash() {
  const n = markedCount();
  if (!n) { say("Nothing is marked for the trash", true); return; }
  const groups = review.groups.filter((g) => g.marked.size);
  const names = groups.flatMap((g) => [...g.marked]).map(basename);
  const listed = names.length <= 3 ? names.join(", ") : `${names.slice(0, 3).join(", ")} and ${names.length - 3} more`;
  const sure = await ask(`Move ${plural(n, "file")} to the trash? Keepers stay. You can undo.`,
                         `${listed}, from ${plural(groups.length, "group")}: each group keeps its keeper where it is; `
                         + "the marked copies go to the system trash.",
                         `Move ${plural(n, "file")} to the trash`);
  if (!sure) { say("Nothing was moved"); return; }
  try {
    const body = groups.map((g) => ({ keep: g.chosen, members: [...g.marked].filter((p) => p !== g.chosen) }));
    const { plan, operations, skipped } = await api("POST", "/v1/dupes/plan", { job: review.job, action: "trash", groups: body });
    const left = skipped && skipped.length ? `${plural(skipped.length, "file")} left out (${basename(skipped[0].path)}: ${skipped[0].reason})` : "";
    if (!operations) { say(left ? "Nothing was moved: " + left : "Nothing is marked for the trash", !!left); return; }
    const before = snapshot();
    const rep = await api("POST", "/v1/plans/apply", { plan });
    const failed = new Set((rep.failed || []).map((f) => f.src || f.path));
    const moved = new Set(plan.operations.map((o) => o.src || o.path).filter((p) => p && !failed.has(p)));
    // moved files leave the view; a group left with its keeper alone goes
    for (const g of review.groups) {
      g.paths = g.paths.filter((p) => !moved.has(p));
      for (const p of moved) g.marked.delete(p);
    }
    review.groups = review.groups.filter((g) => g.paths.length > 1);
    review.undo = { journal: rep.id, count: moved.size, before, job: review.job };
    $("#undo").hidden = false; $("#undo").disabled = false;
    $("#undo").textContent = `Undo: put ${plural(moved.size, "file")} back`;
    renderGroups();
    say(`Moved ${plural(rep.done, "file")} to the trash` + (failed.size ? `; ${failed.size} could not be moved` : "")
        + (left ? "; " + left : "") + ". Undo puts them back.", failed.size > 0);
  } catch (e) { say("move: " + e.message, true); }
}

async function undoMove() {
  if (!review.undo) return;
  try {
    $("#undo").disabled = true;
    const rep = await api("POST", "/v1/undo", { journal: review.undo.journal });
    const same = review.undo.job === review.job;  // else the view shows another search: leave it be
    if (same) review.groups = review.undo.before;
    review.undo = null;
    $("#undo").hidden = true;
    renderGroups();
    say(`Put ${plural(rep.undone, "file")} back` + (same ? "" : " (search again to review them)") + (rep.problems.length ? `; ${plural(rep.problems.length, "problem")}: ${rep.problems[0].reason || rep.problems[0].error || ""}` : ""),
        rep.problems.length > 0);
  } catch (e) { $("#undo").disabled = false; say("undo: " + e.message, true); }
}

// ---- the large compare view (compare.js) ----
function compareGroup(gi, focus) {
  const g = review.groups[gi];
  if (!g) return;
  let at = gi;
  const setOf = (i) => ({ paths: review.groups[i].paths, title: `Group ${i + 1} of ${review.groups.length}` });
  openCompare(setOf(gi).paths, setOf(gi).title, {
    caption: (p) => {
      const grp = review.groups[at], f = grp.facts.get(p) || {};
      const role = p === grp.chosen ? "keep" : grp.marked.has(p) ? "to the trash" : "stays";
      return `${role} · ${basename(p)} · ${f.width ? f.width + " × " + f.height : "?"} · ${bytesWords(f.bytes)}`;
    },
    step: (dir) => {
      const next = at + dir;
      if (next < 0 || next >= review.groups.length) return null;
      at = next;
      review.cursor = review.groups[at].chosen;
      return setOf(at);
    },
    onClose: () => {  // back where the review was, on the group last compared
      const c = cards().find((el) => el.dataset.path === review.cursor);
      if (c) c.focus();
    },
  });
  if (focus) review.cursor = focus;
}

// ---- keyboard ----
function cards() { return [...document.querySelectorAll("#groups .card")]; }

function moveCursor(step, byGroup) {
  const list = cards();
  if (!list.length) return;
  let i = list.findIndex((c) => c.dataset.path === review.cursor);
  if (byGroup) {
    const gi = i < 0 ? -1 : Number(list[i].closest(".group").dataset.group);
    const target = Math.max(0, Math.min(review.groups.length - 1, gi + step));
    const first = list.find((c) => Number(c.closest(".group").dataset.group) === target);
    if (first) first.focus();
    return;
  }
  i = i < 0 ? 0 : Math.max(0, Math.min(list.length - 1, i + step));
  list[i].focus();
}

function current() {
  const el = cards().find((c) => c.dataset.path === review.cursor);
  if (!el) return null;
  return { g: review.groups[Number(el.closest(".group").dataset.group)], path: el.dataset.path };
}

document.addEventListener("keydown", (e) => {
  if ($("#tab-dupes").hidden || $("#confirm").open || $("#compare").open || e.altKey || e.metaKey) return;
  const t = e.target;
  if (t && (t.tagName === "SELECT" || t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && !["radio", "checkbox"].includes(t.type)))) return;
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (e.ctrlKey && key !== "z") return;
  const cur = current();
  const acts = {
    ArrowRight: () => moveCursor(1), ArrowLeft: () => moveCursor(-1),
    ArrowDown: () => moveCursor(1, true), ArrowUp: () => moveCursor(-1, true),
    k: () => cur && makeKeeper(cur.g, cur.path),
    " ": () => cur && toggleMark(cur.g, cur.path), t: () => cur && toggleMark(cur.g, cur.path),
    b: () => review.groups.length && keepBest(),
    c: () => cur && compareGroup(review.groups.indexOf(cur.g), cur.path),
    Enter: () => cur && compareGroup(review.groups.indexOf(cur.g), cur.path),
    Delete: () => !$("#apply").disabled && applyTrash(),
    u: () => !$("#undo").hidden && undoMove(), z: () => e.ctrlKey && !$("#undo").hidden && undoMove(),
  };
  if (!(key in acts)) return;
  if (key === "Enter" && !(t && t.classList && t.classList.contains("card"))) return;  // links, buttons: their own Enter
  e.preventDefault();
  acts[key]();
});

$("#run-dupes").onclick = runDupes;
$("#apply").onclick = applyTrash;
$("#undo").onclick = undoMove;
$("#keep-best").onclick = keepBest;
window.dupesReady = () => renderGroups();
