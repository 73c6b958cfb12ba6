// lookalike web app: People, the faces of a folder grouped by person (uses app.js's $, api, headers,
// encodePath, say, runJob, folder). Naming, merging and moving a face out go through the service's
// /v1/faces/people routes (lookalike.faces.people, the library `lookalike faces` uses).
"use strict";

const people = { grouping: null, ticked: new Set(), crops: new Map(), canChange: true };

function plural3(n, one, many) { return `${n} ${n === 1 ? one : (many || one + "s")}`; }

async function faceCrop(face) {
  const key = face.path + "|" + face.box.join(",");
  if (people.crops.has(key)) return people.crops.get(key);
  const resp = await fetch(`/v1/faces/crop?size=128&box=${face.box.join(",")}&path=${encodePath(face.path)}`,
                           { headers: headers() });
  const url = resp.ok ? URL.createObjectURL(await resp.blob()) : "";
  people.crops.set(key, url);
  return url;
}

function faceTile(face, group) {
  const div = document.createElement("div");
  div.className = "face";
  div.dataset.path = face.path;
  div.dataset.box = face.box.join(",");
  const img = Object.assign(document.createElement("img"), { alt: "a face in " + basename(face.path), title: face.path });
  faceCrop(face).then((u) => { if (u) img.src = u; });
  img.onclick = () => openCompare([face.path], basename(face.path));
  div.append(img);
  const name = Object.assign(document.createElement("div"), { className: "name", textContent: basename(face.path), title: face.path });
  div.append(name);
  const readOnly = "read only: start the service with --allow-changes";
  if (group) {
    const out = Object.assign(document.createElement("button"), { type: "button", className: "move-out",
                                                                textContent: "not this person", disabled: !people.canChange });
    out.title = people.canChange ? "move this face out of the group" : readOnly;
    out.dataset.testid = "move-out";
    out.onclick = () => moveOut(face);
    div.append(out);
  }
  // to another person's group (or, a face on its own, to the person it is)
  const others = people.grouping.groups.filter((g) => g !== group);
  if (others.length) {
    const sel = Object.assign(document.createElement("select"), { className: "move-to", disabled: !people.canChange,
                                                                title: people.canChange ? "move this face to another person" : readOnly });
    sel.dataset.testid = "move-to";
    sel.append(Object.assign(document.createElement("option"), { value: "", textContent: group ? "move to…" : "this is…" }));
    others.forEach((g) => {
      const i = people.grouping.groups.indexOf(g);
      sel.append(Object.assign(document.createElement("option"), { value: g.id, textContent: g.label || `Person ${i + 1}` }));
    });
    sel.onchange = () => { if (sel.value) moveOut(face, sel.value); };
    div.append(sel);
  }
  return div;
}

function groupCard(g, i) {
  const div = document.createElement("div");
  div.className = "group person" + (g.label ? " named" : "");
  div.dataset.group = g.id;
  const head = document.createElement("div");
  head.className = "person-head";
  const tick = Object.assign(document.createElement("input"), { type: "checkbox", className: "pick", checked: people.ticked.has(g.id) });
  tick.title = "tick two groups to merge them";
  tick.onchange = () => { if (tick.checked) people.ticked.add(g.id); else people.ticked.delete(g.id); updateMerge(); };
  const title = Object.assign(document.createElement("strong"), { className: "person-title",
                                                                 textContent: `${g.label || "Person " + (i + 1)} · ${plural3(g.size, "face")}` });
  const form = document.createElement("form");
  form.className = "name-form";
  const input = Object.assign(document.createElement("input"), { className: "person-name", placeholder: "who is this?",
                                                                value: g.label || "", disabled: !people.canChange });
  const go = Object.assign(document.createElement("button"), { type: "submit", textContent: g.label ? "Rename" : "Name",
                                                             disabled: !people.canChange });
  form.append(input, go);
  form.onsubmit = (e) => { e.preventDefault(); namePerson(g.id, input.value); };
  head.append(tick, title, form);
  const row = document.createElement("div");
  row.className = "row faces";
  g.faces.forEach((f) => row.append(faceTile(f, g)));
  div.append(head, row);
  return div;
}

function renderPeople() {
  const box = $("#people");
  box.textContent = "";
  const p = people.grouping;
  if (!p) { $("#people-summary").textContent = ""; updateMerge(); return; }
  const ids = new Set(p.groups.map((g) => g.id));
  people.ticked = new Set([...people.ticked].filter((id) => ids.has(id)));
  const named = p.groups.filter((g) => g.label).length;
  $("#people-summary").textContent = `${plural3(p.groups.length, "person", "people")} (${named} named)`
    + `, ${plural3(p.alone.length, "face")} on ${p.alone.length === 1 ? "its" : "their"} own`
    + (p.no_face.length ? `, ${plural3(p.no_face.length, "photo")} without a face` : "")
    + (p.model ? `; names from the face model ${p.model}.` : ".");
  p.groups.forEach((g, i) => box.append(groupCard(g, i)));
  if (p.alone.length) {
    const div = document.createElement("div");
    div.className = "group alone";
    div.dataset.testid = "alone";
    div.append(Object.assign(document.createElement("div"), { className: "reason", textContent: `Faces on their own · ${p.alone.length}` }));
    const row = document.createElement("div");
    row.className = "row faces";
    p.alone.forEach((f) => row.append(faceTile(f, null)));
    div.append(row);
    box.append(div);
  }
  updateMerge();
}

function updateMerge() {
  const n = people.ticked.size;
  $("#merge-people").disabled = n !== 2;
  $("#merge-people").textContent = n === 2 ? "Merge the 2 ticked groups" : `Merge: tick 2 groups (${n} ticked)`;
}

async function runPeople() {
  try {
    $("#run-people").disabled = true;
    people.grouping = null;
    renderPeople();
    const body = { folder: folder() };
    const model = $("#face-model").value.trim();
    if (model) body.model = model;
    const st = await runJob("/v1/faces/people", body, $("#people-job"), "Finding faces");
    people.grouping = st.result;
    renderPeople();
    say(`${plural3(st.result.groups.length, "person", "people")} found`);
  } catch (e) { say(e.cancelled ? e.message : "people: " + e.message, !e.cancelled); }
  finally { $("#run-people").disabled = false; }
}

async function namePerson(id, label) {
  label = label.trim();
  if (!label) { say("Type the person's name first", true); return; }
  const model = $("#face-model").value.trim();
  if (!model) { say("Give the face model that learns the name (face model, above)", true); return; }
  try {
    say(`Naming ${label}…`);
    const res = await api("POST", "/v1/faces/people/name", { people: people.grouping, group: id, label, model });
    people.grouping = res.people;
    renderPeople();
    const r = res.report;
    say(`${label}: ${plural3(r.photos_added, "face")} learnt by the face model ${r.model}`
        + (r.unchanged ? ` (${r.unchanged} known already)` : "") + `; it knows ${plural3(r.people, "person", "people")}.`);
  } catch (e) { say("name: " + e.message, true); }
}

async function mergeTicked() {
  const [a, b] = people.grouping.groups.filter((g) => people.ticked.has(g.id)).map((g) => g.id);
  if (!a || !b) return;
  try {
    people.grouping = await api("POST", "/v1/faces/people/merge", { people: people.grouping, into: a, other: b });
    people.ticked.clear();
    renderPeople();
    const g = people.grouping.groups.find((x) => x.id === a);
    say(`Merged: ${g.label || "the group"} now has ${plural3(g.size, "face")}`);
  } catch (e) { say("merge: " + e.message, true); }
}

async function moveOut(face, to) {
  try {
    const body = { people: people.grouping, face };
    if (to) body.to = to;
    if (people.grouping.model) body.model = people.grouping.model;
    people.grouping = await api("POST", "/v1/faces/people/move", body);
    renderPeople();
    const g = to && people.grouping.groups.find((x) => x.id === to);
    say(g ? `Moved ${basename(face.path)}'s face to ${g.label || "that group"}` : `Moved ${basename(face.path)}'s face out of the group`);
  } catch (e) { say("move: " + e.message, true); renderPeople(); }
}

$("#run-people").onclick = runPeople;
$("#merge-people").onclick = mergeTicked;
window.peopleReady = (info) => {
  people.canChange = !!info.allow_changes;
  $("#people-note").textContent = people.canChange ? ""
    : "Read only: naming and moving faces need the service started with --allow-changes.";
  api("GET", "/v1/faces/models").then((m) => { if (m.active) $("#face-model").value = m.active; }).catch(() => {});
};
