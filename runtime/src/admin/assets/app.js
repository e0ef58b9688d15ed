// pym dashboard: plain JavaScript, no build step. It polls the admin API
// (/_pym/admin/, the same origin) every 2 s with the token typed in, kept
// in this tab's sessionStorage only.
"use strict";

const API = "/_pym/admin";
const POLL_MS = 2000;
const SPARK_POINTS = 60;
const $ = (sel) => document.querySelector(sel);

const state = {
  token: sessionStorage.getItem("pym_admin_token") || "",
  role: null,
  tab: "overview",
  queue: null,          // the queue picked for detail, dead letters, tasks
  queues: [],
  history: {},          // queue -> [{at, completed}] for the sparklines
  timer: null,
};

async function api(method, path, body) {
  const init = { method, headers: { Authorization: "Bearer " + state.token } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(API + path, init);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const e = new Error(data.error_description || r.status + " " + r.statusText);
    e.status = r.status;
    throw e;
  }
  return data;
}

// DOM helpers: build rows from text only (never HTML from the API).
function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (cls) td.className = cls;
  return td;
}
function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}
function ms(v) {
  if (v === null || v === undefined) return "–";
  if (v < 1000) return v + " ms";
  if (v < 120000) return (v / 1000).toFixed(1) + " s";
  if (v < 7200000) return Math.round(v / 60000) + " min";
  return (v / 3600000).toFixed(1) + " h";
}
function rate(v) {
  return v === null || v === undefined ? "–" : v < 10 ? v.toFixed(2) : Math.round(v).toString();
}
function time(msSinceEpoch) {
  if (!msSinceEpoch) return "–";
  const d = new Date(msSinceEpoch);
  return Date.now() - msSinceEpoch < 86400000 ? d.toLocaleTimeString() : d.toLocaleString();
}

function sparkline(points) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 24");
  const line = document.createElementNS(ns, "polyline");
  const max = Math.max(1, ...points);
  const step = 120 / Math.max(1, points.length - 1);
  line.setAttribute("points", points.map((p, i) =>
    (i * step).toFixed(1) + "," + (23 - (p / max) * 22).toFixed(1)).join(" "));
  svg.append(line);
  return svg;
}

// Throughput between two polls (tasks done per second), per queue.
function record(queues) {
  for (const q of queues) {
    if (q.fetched_total === null || q.fetched_total === undefined) continue;
    const h = (state.history[q.queue] = state.history[q.queue] || []);
    h.push({ at: q.at_ms, completed: q.fetched_total - q.in_flight });
    if (h.length > SPARK_POINTS + 1) h.shift();
  }
}
function throughput(name) {
  const h = state.history[name] || [];
  const out = [];
  for (let i = 1; i < h.length; i++) {
    const dt = (h[i].at - h[i - 1].at) / 1000;
    out.push(dt > 0 ? Math.max(0, h[i].completed - h[i - 1].completed) / dt : 0);
  }
  return out;
}

async function refreshOverview() {
  const data = await api("GET", "/queues");
  state.queues = data.queues;
  record(data.queues);
  $("#updated").textContent = "updated " + time(data.at_ms);
  fill($("#queues tbody"), data.queues.map((q) => {
    const tr = document.createElement("tr");
    tr.dataset.queue = q.queue;
    const r = q.rates || {};
    const spark = document.createElement("td");
    spark.append(sparkline(throughput(q.queue)));
    tr.append(cell(q.queue, "name"), cell(q.ready, "num ready"), cell(q.in_flight, "num in-flight"),
      cell(q.delayed_due, "num delayed-due"), cell(q.delayed_later, "num delayed-later"),
      cell(q.dead, "num dead"), cell(ms(q.oldest_ready_age_ms), "num"),
      cell(rate(r.enqueued_1m) + " · " + rate(r.enqueued_15m), "num enqueued"),
      cell(rate(r.completed_1m) + " · " + rate(r.completed_15m), "num completed"), spark);
    tr.addEventListener("click", () => pickQueue(q.queue, true));
    return tr;
  }));
  pickers();
  if (state.queue) await refreshDetail();
}

async function refreshDetail() {
  const q = await api("GET", "/queues/" + encodeURIComponent(state.queue));
  $("#detail").hidden = false;
  $("#detail-name").textContent = q.queue;
  fill($("#priorities tbody"), Object.entries(q.priorities || {}).map(([p, c]) => {
    const tr = document.createElement("tr");
    tr.append(cell(p), cell(c.ready, "num"), cell(c.in_flight, "num"));
    return tr;
  }));
}

async function refreshWorkers() {
  const data = await api("GET", "/workers");
  fill($("#worker-list tbody"), data.workers.map((w) => {
    const tr = document.createElement("tr");
    tr.append(cell(w.name), cell(w.pod), cell(w.queues.join(", ")), cell(w.concurrency, "num"),
      cell(w.in_flight, "num"), cell(time(w.started_at)), cell(w.version), cell(time(w.last_beat)));
    return tr;
  }));
}

async function refreshSchedules() {
  const data = await api("GET", "/schedules");
  fill($("#schedule-list tbody"), data.schedules.map((s) => {
    const tr = document.createElement("tr");
    tr.append(cell(s.queue), cell(s.task), cell(s.cron), cell(s.tz), cell(s.missed),
      cell(s.enabled ? "yes" : "no"), cell(time(s.next_ms)), cell(time(s.last_run_ms)));
    return tr;
  }));
}

function deadFilter() {
  const f = {};
  const task = $("#dead-task").value.trim();
  const reason = $("#dead-reason").value.trim();
  if (task) f.task = task;
  if (reason) f.reason = reason;
  return f;
}

async function refreshDead() {
  if (!state.queue) return;
  const q = new URLSearchParams(deadFilter());
  const data = await api("GET", "/queues/" + encodeURIComponent(state.queue) + "/dead?" + q);
  $("#dead-total").textContent = "(" + data.dead.length + " shown of " + data.total + ")";
  fill($("#dead-list tbody"), data.dead.map((d) => {
    const tr = document.createElement("tr");
    tr.dataset.deadId = d.id;
    const acts = document.createElement("td");
    acts.append(button("Show", "show", () => showDead(d.id), false),
      button("Replay", "operate replay", () => act("POST", "/dead/" + encodeURIComponent(d.id) + "/replay"), true),
      button("Purge", "operate danger purge", () => act("DELETE", "/dead/" + encodeURIComponent(d.id)), true));
    tr.append(cell(time(d.failed_at)), cell(d.task), cell(d.reason), cell(d.error, "err"),
      cell(d.attempts, "num"), cell(d.user_id), cell(d.request_id), acts);
    return tr;
  }));
}

function button(label, cls, onclick, operate) {
  const b = document.createElement("button");
  b.textContent = label;
  b.className = cls;
  b.type = "button";
  b.disabled = operate && state.role !== "operate";
  b.addEventListener("click", onclick);
  return b;
}

async function showDead(id) {
  const d = await api("GET", "/queues/" + encodeURIComponent(state.queue) + "/dead/" + encodeURIComponent(id));
  const pre = $("#dead-show");
  pre.textContent = JSON.stringify(d, null, 2);
  pre.hidden = false;
}

async function act(method, path, body) {
  try {
    const r = await api(method, "/queues/" + encodeURIComponent(state.queue) + path, body);
    $("#action").textContent = "done: " + r.done + (r.refused ? ", refused " + r.refused : "") + " (action " + r.action_id + ")";
  } catch (e) {
    $("#action").textContent = "failed: " + e.message;
  }
  await tick();
}

async function refreshTasks() {
  if (!state.queue) return;
  const base = "/queues/" + encodeURIComponent(state.queue);
  const [flying, delayed] = await Promise.all([api("GET", base + "/in-flight"), api("GET", base + "/delayed")]);
  fill($("#in-flight-list tbody"), flying.tasks.map((t) => {
    const tr = document.createElement("tr");
    tr.append(cell(t.task), cell(t.id), cell(t.worker), cell(ms(t.idle_ms), "num"), cell(t.attempts, "num"),
      cell(t.user_id), cell(t.request_id));
    return tr;
  }));
  fill($("#delayed-list tbody"), delayed.tasks.map((t) => {
    const tr = document.createElement("tr");
    tr.append(cell(t.task), cell(t.id), cell(ms(t.due_in_ms), "num"), cell(ms(t.age_ms), "num"),
      cell(t.attempts, "num"), cell(t.user_id), cell(t.request_id));
    return tr;
  }));
}

// One task by id: its record (tracked tasks), and cancelling it.
async function showTask() {
  const id = $("#task-id").value.trim();
  if (!id) return;
  const pre = $("#task-record");
  try {
    const r = await api("GET", "/tasks/" + encodeURIComponent(id));
    pre.textContent = JSON.stringify(r, null, 2);
    pre.hidden = false;
    $("#task-note").textContent = r.task + ": " + r.state;
  } catch (e) {
    pre.hidden = true;
    $("#task-note").textContent = e.message;
  }
}

async function cancelTask() {
  const id = $("#task-id").value.trim();
  if (!id) return;
  try {
    const r = await api("POST", "/tasks/" + encodeURIComponent(id) + "/cancel");
    $("#task-note").textContent = "cancel: " + r.outcome.replace(/_/g, " ") + (r.state ? " (" + r.state + ")" : "") + " (action " + r.action_id + ")";
  } catch (e) {
    $("#task-note").textContent = "cancel failed: " + e.message;
  }
  const shown = $("#task-note").textContent;
  await showTask();
  if (!$("#task-record").hidden) $("#task-note").textContent = shown;
}

// The queue pickers of the dead-letter and task views.
function pickers() {
  if (!state.queue && state.queues.length) {
    const d = state.queues.find((q) => q.queue === "default");
    state.queue = (d || state.queues[0]).queue;
  }
  for (const sel of document.querySelectorAll(".queue-pick")) {
    const names = state.queues.map((q) => q.queue);
    if (sel.dataset.names !== names.join(",")) {
      sel.replaceChildren(...names.map((n) => new Option(n, n)));
      sel.dataset.names = names.join(",");
    }
    sel.value = state.queue || "";
  }
}

function pickQueue(name, detail) {
  state.queue = name;
  pickers();
  if (detail) refreshDetail().catch(failed);
  else tick();
}

const refreshers = { overview: refreshOverview, workers: refreshWorkers, schedules: refreshSchedules, dead: refreshDead, delayed: refreshTasks };

async function tick() {
  try {
    if (state.tab !== "overview") await refreshOverview();
    await refreshers[state.tab]();
  } catch (e) {
    failed(e);
  }
}

function failed(e) {
  if (e.status === 401 || e.status === 403) {
    signOut(e.message);
  } else {
    $("#updated").textContent = "refresh failed: " + e.message;
  }
}

function show(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("on", b.dataset.tab === tab);
  for (const id of Object.keys(refreshers)) $("#" + id).hidden = id !== tab;
  tick();
}

async function signIn(token) {
  state.token = token;
  try {
    const me = await api("GET", "/me");
    state.role = me.role;
    sessionStorage.setItem("pym_admin_token", token);
    $("#who").textContent = (me.user_id || "?") + " (" + me.role + ")";
    $("#login-form").hidden = true;
    $("#tabs").hidden = false;
    $("#logout").hidden = false;
    for (const b of document.querySelectorAll("button.operate")) b.disabled = me.role !== "operate";
    show(state.tab);
    clearInterval(state.timer);
    state.timer = setInterval(tick, POLL_MS);
  } catch (e) {
    signOut(e.message);
  }
}

function signOut(why) {
  clearInterval(state.timer);
  sessionStorage.removeItem("pym_admin_token");
  state.token = "";
  state.role = null;
  $("#login-error").textContent = why || "";
  $("#login-form").hidden = false;
  $("#tabs").hidden = true;
  $("#logout").hidden = true;
  $("#who").textContent = "";
  for (const id of Object.keys(refreshers)) $("#" + id).hidden = true;
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    signIn($("#token").value.trim());
  });
  $("#logout").addEventListener("click", () => signOut(""));
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => show(b.dataset.tab));
  for (const sel of document.querySelectorAll(".queue-pick")) sel.addEventListener("change", () => pickQueue(sel.value, false));
  $("#dead-filter").addEventListener("submit", (ev) => { ev.preventDefault(); tick(); });
  $("#task-find").addEventListener("submit", (ev) => { ev.preventDefault(); showTask(); });
  $("#task-cancel").addEventListener("click", cancelTask);
  $("#replay-set").addEventListener("click", () => {
    const f = deadFilter();
    if (!Object.keys(f).length && !confirm("Replay every dead letter of " + state.queue + "?")) return;
    act("POST", "/dead/replay", Object.keys(f).length ? f : { all: true });
  });
  $("#purge-set").addEventListener("click", () => {
    const f = deadFilter();
    const what = Object.keys(f).length ? "the matching dead letters" : "every dead letter";
    if (!confirm("Delete " + what + " of " + state.queue + "?")) return;
    act("POST", "/dead/purge", Object.keys(f).length ? f : { all: true });
  });
  if (state.token) signIn(state.token);
});
