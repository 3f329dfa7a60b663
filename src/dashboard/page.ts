/**
 * The dashboard, served by the broker itself (`/ui`): its plain HTML and CSS kept as a string, so the single binary
 * carries it and nothing is built or fetched at run time; its script is app_script.ts (`/ui/app.js`), the only one
 * the content security policy allows.
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
