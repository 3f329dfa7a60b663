/**
 * The dashboard's browser JavaScript (`/ui/app.js`), kept as a string for the single binary. Message content is
 * only ever set as text (never as HTML).
 */

export const DASHBOARD_SCRIPT = `"use strict";
const $ = (id) => document.getElementById(id);
let token = localStorage.getItem("interop-token") || "";
const auth = () => (token ? { authorization: "Bearer " + token } : {});
const known = new Set();
/** Messages shown, by id: an inbox's history and the live feed meet here without showing one twice. */
const feed = new Map();
/** Each agent's pending count and delivered id when its history was last read: a change may change its pending marks. */
const pendingSeen = new Map();
const HISTORY_PER_AGENT = 50;
/**
 * A body longer than this shows its start and how much more there is: the feed is rebuilt at each message, and 200
 * bodies of a MiB each froze the page for seconds (red team 54).
 */
const SHOWN_CHARS = 2000;
/** Each shown message's body as the feed shows it, made once; let go with the message. */
const bodies = new WeakMap();

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text; // text only: message content never becomes markup
  if (className) node.className = className;
  return node;
}

async function getJson(path) {
  const response = await fetch(path, { headers: auth() });
  if (response.status === 401 || response.status === 403) {
    throw Object.assign(new Error((await response.json()).error), { auth: true, status: response.status });
  }
  // 429 too_many_requests, 503 server_busy: the broker answered, and says when to ask again.
  const retryAfter = Number(response.headers.get("retry-after"));
  if ((response.status === 429 || response.status === 503) && retryAfter > 0) {
    const answer = await response.json().catch(() => ({}));
    throw Object.assign(new Error(path + ": HTTP " + response.status + (answer.error ? " (" + answer.error + ")" : "")), { retryAfter });
  }
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return seconds < 60 ? seconds + " s ago" : seconds < 3600 ? Math.round(seconds / 60) + " min ago" : Math.round(seconds / 3600) + " h ago";
}

function showAgents(status) {
  $("summary").textContent = "v" + status.version + " · " + status.runtime + " · up " + Math.round(status.uptime_seconds) + " s · " + status.streams + " streams";
  const brokerName = showBrokers(status.brokers);
  const rows = Object.entries(status.agents).map(([name, agent]) => {
    const row = el("tr");
    row.append(el("td", name), el("td", agent.online ? "online" : "offline", agent.online ? "online" : "offline"),
      el("td", ago(agent.last_seen)), el("td", String(agent.pending)), el("td", String(agent.dead_letters)));
    if (brokerName) row.append(el("td", agent.stream_broker ? brokerName(agent.stream_broker) : "–"));
    return row;
  });
  $("agents").replaceChildren(...rows);
  for (const name of Object.keys(status.agents)) addAgent(name);
  for (const [name, agent] of Object.entries(status.agents)) {
    const state = agent.pending + "/" + agent.delivered_id;
    if (pendingSeen.get(name) === state) continue;
    pendingSeen.set(name, state);
    loadHistory(name);
  }
}

/**
 * Brokers sharing a database (only then does /status list them): their table, shown; returns how to name one by
 * its id (its address, this one marked), or null on a broker of its own.
 */
function showBrokers(brokers) {
  const cluster = Array.isArray(brokers);
  $("brokers-section").hidden = !cluster;
  for (const cell of document.querySelectorAll(".cluster")) cell.hidden = !cluster;
  if (!cluster) return null;
  const names = new Map(brokers.map((broker) => [broker.id, (broker.listening || broker.id) + (broker.self ? " (this one)" : "")]));
  $("brokers").replaceChildren(...brokers.map((broker) => {
    const row = el("tr");
    row.append(el("td", broker.id), el("td", names.get(broker.id)), el("td", broker.host + " · " + broker.pid),
      el("td", broker.alive ? "alive" : "gone", broker.alive ? "online" : "offline"), el("td", ago(broker.heartbeat_at)), el("td", broker.version));
    return row;
  }));
  return (id) => names.get(id) || id;
}

/** An inbox's last messages, pending ones marked; read from /history, which takes nothing from it. */
async function loadHistory(name) {
  let messages;
  try {
    messages = await getJson("/history?agent=" + encodeURIComponent(name) + "&limit=" + HISTORY_PER_AGENT);
  } catch {
    return; // an agent's token may read only its own inbox: the others show what the live feed brings
  }
  for (const message of messages) feed.set(message.interop.id, message);
  showFeed();
}

/** The task table's next read after the broker said it was busy (a timer), or undefined: none is due. */
let tasksRetry;

/**
 * Reads the task table, unless the broker said it was busy: then it says so and reads it again when Retry-After
 * says, not at the next refresh (a table of big tasks counts against the answers of the agent a2a, which the
 * broker refuses past their bound: read sooner, refused again).
 */
async function refreshTasks() {
  if (tasksRetry !== undefined) return;
  try {
    showTasks(await getJson("/a2a"));
    $("tasks-busy").hidden = true;
  } catch (error) {
    if (error.retryAfter === undefined) throw error;
    $("tasks-busy").textContent = "Broker busy: " + error.message + "; retrying in " + error.retryAfter + " s";
    $("tasks-busy").hidden = false;
    tasksRetry = setTimeout(() => {
      tasksRetry = undefined;
      refreshTasks().catch(() => {}); // unreachable or refused: the next refresh says so
    }, error.retryAfter * 1000);
  }
}

function showTasks(list) {
  $("no-tasks").hidden = list.tasks.length > 0;
  $("tasks").replaceChildren(...list.tasks.map((task) => {
    const row = el("tr");
    const state = task.state.replace("TASK_STATE_", "").toLowerCase().replace("_", " ");
    row.append(el("td", task.id), el("td", task.from + " → " + task.to), el("td", state, "task-" + state.replace(" ", "-")), el("td", ago(task.updated)));
    return row;
  }));
}

function addAgent(name) {
  if (known.has(name)) return;
  known.add(name);
  $("filter").append(new Option(name, name));
  $("to").append(new Option(name, name));
}

function showFeed() {
  const filter = $("filter").value;
  const items = [...feed.values()].sort((a, b) => b.interop.id - a.interop.id)
    .filter((m) => !filter || m.interop.from === filter || m.interop.to === filter);
  $("feed").replaceChildren(...items.slice(0, 200).map((message) => {
    const { interop } = message;
    const item = el("li");
    item.append(el("span", interop.from + " → " + interop.to + " · #" + interop.id + " · " + new Date(interop.timestamp).toLocaleTimeString(), "muted"));
    if (interop.pending) item.append(el("span", " · pending", "pending"));
    item.append(el("pre", bodyOf(message)));
    return item;
  }));
}

function bodyOf(message) {
  let shown = bodies.get(message);
  if (shown === undefined) {
    const { interop, ...payload } = message;
    const whole = typeof payload.text === "string" && Object.keys(payload).length === 1 ? payload.text : JSON.stringify(payload, null, 1);
    shown = whole.length <= SHOWN_CHARS ? whole : whole.slice(0, SHOWN_CHARS) + "\\n… (" + (whole.length - SHOWN_CHARS) + " more characters)";
    bodies.set(message, shown);
  }
  return shown;
}

function showMessage(message) {
  // A message's history entry (with its pending mark) is newer news than its live copy.
  if (!feed.has(message.interop.id)) feed.set(message.interop.id, message);
  for (const id of [...feed.keys()].sort((a, b) => a - b).slice(0, Math.max(0, feed.size - 500))) feed.delete(id);
  addAgent(message.interop.from);
  addAgent(message.interop.to);
  showFeed();
}

// fetch, not EventSource: EventSource cannot send a header, and a token in a URL ends up in proxies' access logs.
async function connectFeed() {
  let retryMs = 2000;
  for (;;) {
    let why = "Live feed disconnected";
    let waitMs = retryMs;
    try {
      const response = await fetch("/events", { headers: { accept: "text/event-stream", ...auth() } });
      if (response.status === 401 || response.status === 403) return askForToken((await response.json()).error);
      if (response.ok) {
        $("feed-down").hidden = true;
        await readEvents(response.body, (type, data) => type === "message" && showMessage(JSON.parse(data)), (ms) => (retryMs = ms));
      } else {
        // 429 (this caller's feeds at their bound), 503 (the broker full or stopping): its reason, and when to ask again.
        const answer = await response.json().catch(() => ({}));
        why = "Live feed refused: HTTP " + response.status + (answer.error ? " (" + answer.error + ")" : "");
        waitMs = Math.max(retryMs, 1000 * (Number(response.headers.get("retry-after")) || 0));
      }
    } catch {
      // The connection dropped: reconnect, as EventSource would.
    }
    $("feed-down").textContent = why + "; reconnecting in " + Math.ceil(waitMs / 1000) + " s";
    $("feed-down").hidden = false;
    await new Promise((resolve) => setTimeout(resolve, waitMs));
  }
}

/** Reads a text/event-stream body until it ends: onEvent(type, data) per event, onRetry(ms) per retry field. */
async function readEvents(body, onEvent, onRetry) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let rest = "";
  let type = "";
  let data = [];
  for (;;) {
    const { value: chunk, done } = await reader.read();
    if (done) return;
    const lines = (rest + chunk).split("\\n");
    rest = lines.pop();
    for (const line of lines.map((text) => text.replace(/\\r$/, ""))) {
      if (line === "") {
        if (data.length > 0) onEvent(type || "message", data.join("\\n"));
        type = "";
        data = [];
        continue;
      }
      const colon = line.indexOf(":");
      if (colon === 0) continue; // a comment: the keepalive
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "retry" && /^\\d+$/.test(value)) onRetry(Number(value));
    }
  }
}

function showChart(stats) {
  const now = Date.now();
  const seconds = stats.seconds.map((s) => ({ ...s, t: Date.parse(s.time) }));
  const maxRate = Math.max(1, ...seconds.map((s) => s.published));
  const maxLatency = Math.max(1, ...seconds.map((s) => s.latency_ms));
  const x = (t) => (600 * (t - (now - 600000)) / 600000).toFixed(1);
  $("rate-line").setAttribute("points", seconds.map((s) => x(s.t) + "," + (135 - 125 * s.published / maxRate).toFixed(1)).join(" "));
  $("latency-line").setAttribute("points", seconds.filter((s) => s.delivered).map((s) => x(s.t) + "," + (135 - 125 * s.latency_ms / maxLatency).toFixed(1)).join(" "));
  const last = seconds.filter((s) => now - s.t < 5000);
  const rate = last.reduce((sum, s) => sum + s.published, 0) / 5;
  $("rate-now").textContent = "messages/s: " + rate.toFixed(1) + " (peak " + maxRate + ")";
  const latest = seconds.filter((s) => s.delivered).at(-1);
  $("latency-now").textContent = "publish→deliver: " + (latest ? latest.latency_ms.toFixed(1) + " ms" : "–") + " (max " + maxLatency.toFixed(1) + " ms)";
}

/** Draws the chart, which an agent's token may not see (403): the page says so instead of asking for another token. */
async function refreshChart() {
  try {
    showChart(await getJson("/stats"));
    // Shown again once an admin's token replaced the agent's.
    $("chart").style.display = "";
    $("chart-admin").hidden = true;
  } catch (error) {
    if (error.status !== 403) throw error;
    $("chart").style.display = "none"; // an SVG element has no hidden property
    $("chart-admin").hidden = false;
  }
}

async function refresh() {
  try {
    const [status] = await Promise.all([getJson("/status"), refreshChart(), refreshTasks()]);
    showAgents(status);
  } catch (error) {
    if (error.auth) return askForToken(error.message);
    $("summary").textContent = (error.retryAfter === undefined ? "broker unreachable: " : "broker busy: ") + error.message;
  }
}

function askForToken(reason) {
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = token ? reason : "";
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  localStorage.setItem("interop-token", token);
  start();
});

$("filter").addEventListener("change", showFeed);

$("send").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = new URLSearchParams({ from: $("from").value, to: $("to").value });
  const response = await fetch("/broadcast?" + query, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth() },
    body: JSON.stringify({ text: $("text").value }),
  });
  const answer = await response.json();
  $("sent").textContent = response.ok ? "sent #" + answer.id : answer.error;
  if (response.ok) $("text").value = "";
});

async function start() {
  const probe = await fetch("/status", { headers: auth() });
  const status = await probe.json();
  if (!status.agents) return askForToken(token ? "That token was refused." : "");
  $("login").hidden = true;
  $("app").hidden = false;
  showAgents(status);
  connectFeed();
  await refresh();
  setInterval(refresh, 2000);
}

start();
`;
