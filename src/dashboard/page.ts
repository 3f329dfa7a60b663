/**
 * The dashboard, served by the broker itself (`/ui`): plain HTML, CSS and browser JavaScript kept as strings, so
 * the single binary carries it and nothing is built or fetched at run time. Message content is only ever set as
 * text (never as HTML), and the content security policy allows no script but this one.
 */

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>interop</title>
<style>
  :root { --bg: #f7f7f8; --fg: #1b1b1f; --card: #fff; --muted: #6b6b76; --line: #dedee3; --ok: #1a7f37; --off: #b42318; --accent: #2f6feb; }
  @media (prefers-color-scheme: dark) {
    :root { --bg: #111214; --fg: #e6e6ea; --card: #1b1c1f; --muted: #9a9aa5; --line: #2e2f34; --ok: #3fb950; --off: #f85149; --accent: #58a6ff; }
  }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
  header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: baseline; padding: .8rem 1rem; border-bottom: 1px solid var(--line); }
  header h1 { margin: 0; font-size: 1.2rem; }
  #summary, .muted { color: var(--muted); }
  main { display: grid; gap: 1rem; padding: 1rem; grid-template-columns: repeat(auto-fit, minmax(min(100%, 26rem), 1fr)); }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .8rem; min-width: 0; overflow-x: auto; }
  h2 { margin: 0 0 .6rem; font-size: 1rem; }
  table { width: 100%; border-collapse: collapse; }
  th, td { text-align: left; padding: .25rem .4rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
  .online, .task-completed { color: var(--ok); } .offline, .task-failed, .task-rejected { color: var(--off); }
  #feed { list-style: none; margin: 0; padding: 0; max-height: 26rem; overflow: auto; }
  #feed li { border-bottom: 1px solid var(--line); padding: .35rem 0; }
  #feed pre { margin: .2rem 0 0; white-space: pre-wrap; word-break: break-word; font-size: .85rem; }
  .pending { color: var(--accent); font-weight: 600; }
  form { display: flex; flex-wrap: wrap; gap: .5rem; }
  input, select, textarea, button { font: inherit; color: inherit; background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: .35rem .5rem; }
  textarea { flex: 1 1 100%; min-height: 4rem; }
  button { background: var(--accent); color: #fff; border: 0; cursor: pointer; }
  svg { width: 100%; height: 9rem; }
  .legend span { margin-right: 1rem; }
  #login[hidden], #app[hidden] { display: none; }
</style>
</head>
<body>
<header><h1>interop</h1><span id="summary">connecting…</span></header>
<div id="login" hidden>
  <main><section>
    <h2>This broker needs a token</h2>
    <p class="muted">Paste an admin token (<code>interop token create --admin</code>) for everything, or an agent's token for its own view.</p>
    <form id="login-form"><input id="token" type="password" autocomplete="off" placeholder="itk_…" required><button>Open</button></form>
    <p id="login-error" class="offline"></p>
  </section></main>
</div>
<div id="app" hidden>
<main>
  <section>
    <h2>Agents</h2>
    <table><thead><tr><th>agent</th><th>state</th><th>last seen</th><th>pending</th><th>dead letters</th><th class="cluster" hidden>stream on</th></tr></thead><tbody id="agents"></tbody></table>
  </section>
  <section id="brokers-section" hidden>
    <h2>Brokers on this database</h2>
    <table><thead><tr><th>broker</th><th>listening</th><th>host · pid</th><th>state</th><th>heartbeat</th><th>version</th></tr></thead><tbody id="brokers"></tbody></table>
  </section>
  <section>
    <h2>A2A tasks</h2>
    <table><thead><tr><th>task</th><th>from → to</th><th>state</th><th>updated</th></tr></thead><tbody id="tasks"></tbody></table>
    <p id="no-tasks" class="muted">No A2A tasks yet: A2A clients send to <code>/a2a/AGENT</code>.</p>
    <p id="tasks-busy" class="offline" hidden></p>
  </section>
  <section>
    <h2>Traffic, last 10 minutes</h2>
    <svg id="chart" viewBox="0 0 600 140" preserveAspectRatio="none" role="img" aria-label="messages per second and latency">
      <polyline id="rate-line" fill="none" stroke="var(--accent)" stroke-width="2" points=""></polyline>
      <polyline id="latency-line" fill="none" stroke="var(--ok)" stroke-width="1.5" stroke-dasharray="4 3" points=""></polyline>
    </svg>
    <div class="legend muted"><span id="rate-now">messages/s: –</span><span id="latency-now">publish→deliver: –</span></div>
    <p id="chart-admin" class="muted" hidden>The whole broker's traffic is for an admin token to see.</p>
  </section>
  <section>
    <h2>Messages</h2>
    <p class="muted">each inbox's pending and recent messages, then what is published while this page is open</p>
    <p id="feed-down" class="offline" hidden></p>
    <label class="muted">agent <select id="filter"><option value="">all</option></select></label>
    <ul id="feed"></ul>
  </section>
  <section>
    <h2>Send</h2>
    <form id="send">
      <label>from <input id="from" required size="10" value="dashboard"></label>
      <label>to <select id="to" required></select></label>
      <textarea id="text" placeholder="message text" required></textarea>
      <button>Send</button><span id="sent" class="muted"></span>
    </form>
  </section>
</main>
</div>
<script src="/ui/app.js"></script>
</body>
</html>
`;

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
/** Each shown message's body as the feed shows it, made once: by id, as feed. */
const bodies = new Map();

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
    const { interop, ...payload } = message;
    const item = el("li");
    item.append(el("span", interop.from + " → " + interop.to + " · #" + interop.id + " · " + new Date(interop.timestamp).toLocaleTimeString(), "muted"));
    if (interop.pending) item.append(el("span", " · pending", "pending"));
    item.append(el("pre", bodyOf(interop.id, payload)));
    return item;
  }));
}

function bodyOf(id, payload) {
  let shown = bodies.get(id);
  if (shown === undefined) {
    const whole = typeof payload.text === "string" && Object.keys(payload).length === 1 ? payload.text : JSON.stringify(payload, null, 1);
    shown = whole.length <= SHOWN_CHARS ? whole : whole.slice(0, SHOWN_CHARS) + "\\n… (" + (whole.length - SHOWN_CHARS) + " more characters)";
    bodies.set(id, shown);
  }
  return shown;
}

function showMessage(message) {
  // A message's history entry (with its pending mark) is newer news than its live copy.
  if (!feed.has(message.interop.id)) feed.set(message.interop.id, message);
  for (const id of [...feed.keys()].sort((a, b) => a - b).slice(0, Math.max(0, feed.size - 500))) {
    feed.delete(id);
    bodies.delete(id);
  }
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
