/** The dashboard in a real browser: Debian's Chromium driven by playwright-core, against the broker under test. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import type { Request } from "playwright-core";
import { launchBrowser } from "../helpers/browser.ts";
import { publish, startBroker, waitFor } from "../helpers/broker.ts";
import { runCli } from "../helpers/cli.ts";
import { distinctPixelBytes } from "../helpers/png.ts";
import { brokersOnOneDatabase, sharedPostgres } from "../helpers/postgres.ts";
import { openSse } from "../helpers/sse.ts";

const ARTIFACTS = join(import.meta.dirname!, "..", "artifacts");
test("the dashboard shows the agents, a curl publish within a second, sends with its form, and shows <script> as text", async () => {
  // `await using`: each is stopped when the test ends, however it ends, even when the next one fails to start.
  await using browser = await launchBrowser();
  await using broker = await startBroker();
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  const scriptErrors: string[] = [];
  page.on("pageerror", (error) => scriptErrors.push(error.message));
  // The page opens its live feed after drawing the agents: a publish before the broker has the feed shows at the
  // next refresh (2 s), not live.
  const feedOpen = page.waitForResponse((response) => new URL(response.url()).pathname === "/events" && response.ok());
  await page.goto(`${broker.url}/`);
  assert.equal(new URL(page.url()).pathname, "/ui");
  await page.locator("#agents tr", { hasText: "hermes" }).waitFor({ timeout: 5000 });
  await page.locator("#agents tr", { hasText: "openclaw" }).waitFor({ timeout: 5000 });
  await feedOpen;

  // Published with curl: in the feed within a second.
  const published = Date.now();
  await promisify(execFile)("curl", ["-sf", "-X", "POST", "-H", "content-type: application/json", "-d", '{"text":"hello from curl"}',
    `${broker.url}/broadcast?from=hermes&to=openclaw`]);
  await page.locator("#feed li", { hasText: "hello from curl" }).waitFor({ timeout: 1000 });
  console.log(`curl publish shown in the feed after ${Date.now() - published} ms`);
  await runCli(["poll", "--agent", "openclaw", "--url", broker.url]);

  // The send form delivers a message that interop poll returns.
  await page.fill("#from", "hermes");
  await page.selectOption("#to", "openclaw");
  await page.fill("#text", "sent from the dashboard");
  await page.click("#send button");
  await page.locator("#sent", { hasText: /^sent #\d+$/ }).waitFor({ timeout: 5000 });
  const polled = await runCli(["poll", "--agent", "openclaw", "--url", broker.url]);
  assert.equal(JSON.parse(polled.stdout).text, "sent from the dashboard");

  // Markup in a message is text, never HTML: nothing runs, no element appears.
  const hostile = `<script>window.injected = 1</script><img src=x onerror="window.injected = 2"><b>bold</b>`;
  await fetch(`${broker.url}/broadcast?from=hermes&to=openclaw`, { method: "POST", body: JSON.stringify({ text: hostile }) });
  await page.locator("#feed li pre", { hasText: "<script>window.injected = 1</script>" }).waitFor({ timeout: 2000 });
  assert.equal(await page.evaluate("window.injected"), undefined);
  assert.equal(await page.locator("#feed img, #feed script, #feed b").count(), 0);

  // The chart and the agents refresh from /stats and /status.
  await waitFor(async () => (await page.locator("#rate-line").getAttribute("points"))?.includes(","), 5000, "the chart to draw");
  mkdirSync(ARTIFACTS, { recursive: true });
  const screenshot = await page.screenshot({ fullPage: true });
  writeFileSync(join(ARTIFACTS, "dashboard.png"), screenshot);
  assert.ok(distinctPixelBytes(screenshot) > 50, "the screenshot is not blank");

  // Phone width and dark mode: nothing wider than the screen, and the dark palette applies.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.emulateMedia({ colorScheme: "dark" });
  // Expressions as strings: they run in the page, where the DOM types of this (server-side) test do not apply.
  assert.ok(await page.evaluate("document.documentElement.scrollWidth <= 390"), "no horizontal scrolling at 390 px");
  assert.equal(await page.evaluate("getComputedStyle(document.body).backgroundColor"), "rgb(17, 18, 20)");
  writeFileSync(join(ARTIFACTS, "dashboard-phone-dark.png"), await page.screenshot({ fullPage: true }));
  assert.deepEqual(scriptErrors, []);
});

test("with tokens the dashboard shows nothing until given one, and an admin token opens it", async () => {
  await using browser = await launchBrowser();
  await using broker = await startBroker();
  const admin = (await runCli(["token", "create", "--admin", "--data-dir", broker.dataDir])).stdout.trim();
  await waitFor(async () => (await fetch(`${broker.url}/stats`)).status === 401, 5000, "tokens to take effect");
  const page = await browser.newPage();
  await page.goto(`${broker.url}/ui`);
  await page.locator("#login").waitFor({ state: "visible", timeout: 5000 });
  assert.equal(await page.locator("#app").isVisible(), false);
  assert.equal(await page.locator("#agents tr").count(), 0, "no agent shown without a token");
  await page.fill("#token", admin);
  await page.click("#login-form button");
  await page.locator("#agents tr", { hasText: "hermes" }).waitFor({ timeout: 5000 });
  assert.equal(await page.locator("#login").isVisible(), false);
});

/** Sends `text` to openclaw as an A2A task (SendMessage, returning at once). */
function sendTask(url: string, text: string): Promise<Response> {
  return fetch(`${url}/a2a/openclaw`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "SendMessage",
      params: { message: { messageId: text, role: "ROLE_USER", parts: [{ text }] }, configuration: { returnImmediately: true } },
    }),
  });
}

test("the dashboard lists A2A tasks with their states as they change", async () => {
  await using browser = await launchBrowser();
  await using broker = await startBroker();
  await sendTask(broker.url, "first task");
  const page = await browser.newPage();
  await page.goto(`${broker.url}/ui`);
  await page.locator("#tasks tr", { hasText: "a2a → openclaw" }).filter({ hasText: "submitted" }).waitFor({ timeout: 5000 });
  // Taken by the agent: the task is WORKING.
  const polled = await runCli(["poll", "--agent", "openclaw", "--url", broker.url]);
  assert.equal(JSON.parse(polled.stdout).text, "first task");
  await page.locator("#tasks tr", { hasText: "a2a → openclaw" }).filter({ hasText: "working" }).waitFor({ timeout: 5000 });
});

test("the dashboard's task table says the broker is busy on a 429 and reads it again when Retry-After says, not before", async () => {
  // It said "broker unreachable" and asked again at its next refresh, 2 s on, whatever Retry-After said.
  await using browser = await launchBrowser();
  await using broker = await startBroker();
  await sendTask(broker.url, "a task");
  const page = await browser.newPage();
  const RETRY_AFTER_S = 4;
  // The first read of the table is refused as a broker past the bound of a2a's answers refuses it; the others go through.
  const reads: number[] = [];
  await page.route(/\/a2a$/, async (route) => {
    reads.push(Date.now());
    if (reads.length > 1) return await route.continue();
    await route.fulfill({
      status: 429,
      headers: { "content-type": "application/json", "retry-after": String(RETRY_AFTER_S) },
      body: JSON.stringify({ error: "Too many answers to a2a not read yet", code: "too_many_requests" }),
    });
  });
  await page.goto(`${broker.url}/ui`);
  const busy = page.locator("#tasks-busy", { hasText: `retrying in ${RETRY_AFTER_S} s` });
  await busy.waitFor({ timeout: 5000 });
  assert.match(await busy.innerText(), /busy.*429.*Too many answers to a2a not read yet/);
  assert.doesNotMatch(await page.locator("#summary").innerText(), /unreachable/);
  await page.locator("#tasks tr", { hasText: "a2a → openclaw" }).waitFor({ timeout: 5000 + RETRY_AFTER_S * 1000 });
  await busy.waitFor({ state: "hidden", timeout: 5000 });
  // Read again once, when Retry-After said (a timer fires no sooner than it was set for).
  assert.ok(reads[1] - reads[0] >= RETRY_AFTER_S * 1000 - 50, `read again ${reads[1] - reads[0]} ms after the 429`);
});

test("the dashboard's live feed, refused 429 past the feeds a caller may have, shows the broker's reason and connects once one closes", async (t) => {
  // It said "feed disconnected, reconnecting…" in the summary, which the next status refresh overwrote.
  await using browser = await launchBrowser();
  await using broker = await startBroker();
  const feeds = await Promise.all(Array.from({ length: 8 }, () => openSse(`${broker.url}/events`)));
  t.after(() => feeds.forEach((feed) => feed.close()));
  const page = await browser.newPage();
  const asked: Request[] = [];
  page.on("request", (request) => new URL(request.url()).pathname === "/events" && asked.push(request));
  await page.goto(`${broker.url}/ui`);
  const down = page.locator("#feed-down", { hasText: "reconnecting in 2 s" });
  await down.waitFor({ timeout: 5000 });
  assert.match(await down.innerText(), /^Live feed refused: HTTP 429 \(Too many live feeds for callers without a token: 8 open/);
  await waitFor(() => asked.length >= 2, 5000, "a second try");
  // When the browser sent each, on its clock (known once answered): the test's clock when it heard of each measured
  // the events' way to it too, and said 1939 ms on a loaded machine.
  const [first, second] = await Promise.all(asked.slice(0, 2).map(async (request) => (await request.response(), request.timing().startTime)));
  assert.ok(second - first >= 2000, `tried again ${second - first} ms after the 429`);
  feeds.pop()!.close();
  await down.waitFor({ state: "hidden", timeout: 5000 });
  await publish(broker.url, "hermes", "openclaw", { text: "after the refusal" });
  await page.locator("#feed li", { hasText: "after the refusal" }).waitFor({ timeout: 2000 });
});

test("the dashboard shows each inbox's pending and recent messages on load, and unmarks one once it is delivered", async () => {
  await using browser = await launchBrowser();
  await using broker = await startBroker();
  // Before the page opens: one message delivered to hermes by its stream, two waiting for openclaw.
  assert.equal((await publish(broker.url, "openclaw", "hermes", { text: "delivered before the page opened" })).status, 200);
  const hermes = await openSse(`${broker.url}/subscribe?agent=hermes`);
  await hermes.take(1);
  hermes.close();
  for (const text of ["waiting for openclaw 1", "waiting for openclaw 2"]) {
    assert.equal((await publish(broker.url, "hermes", "openclaw", { text })).status, 200);
  }

  const page = await browser.newPage();
  const scriptErrors: string[] = [];
  page.on("pageerror", (error) => scriptErrors.push(error.message));
  await page.goto(`${broker.url}/ui`);
  const item = (text: string) => page.locator("#feed li", { hasText: text });
  await item("waiting for openclaw 2").waitFor({ timeout: 5000 });
  await item("delivered before the page opened").waitFor({ timeout: 5000 });
  assert.deepEqual(await page.locator("#feed li pre").allTextContents(), [
    "waiting for openclaw 2",
    "waiting for openclaw 1",
    "delivered before the page opened",
  ]);
  assert.equal(await item("waiting for openclaw 1").locator(".pending").count(), 1);
  assert.equal(await item("delivered before the page opened").locator(".pending").count(), 0);

  // Looking took nothing: openclaw's stream still gets both, and the page drops their pending marks.
  const openclaw = await openSse(`${broker.url}/subscribe?agent=openclaw`);
  assert.equal((await openclaw.take(2)).length, 2);
  openclaw.close();
  await waitFor(async () => (await page.locator("#feed .pending").count()) === 0, 10_000, "the pending marks to go");
  assert.deepEqual(scriptErrors, []);
});

const cluster = sharedPostgres();

test("with brokers on one database, the dashboard and /metrics show each broker and the one each agent's stream is on", async (t) => {
  const server = await cluster(t);
  if (server === undefined) return;
  const { brokers: [a, b] } = await brokersOnOneDatabase(t, server, 2);
  await using browser = await launchBrowser();
  const stream = await openSse(`${b.url}/subscribe?agent=hermes`);
  t.after(() => stream.close());
  const bAddress = new URL(b.url).host;
  const page = await browser.newPage();
  await page.goto(`${a.url}/ui`);
  await page.locator("#brokers tr", { hasText: "alive" }).nth(1).waitFor({ timeout: 10_000 });
  await page.locator("#brokers tr", { hasText: `${new URL(a.url).host} (this one)` }).waitFor({ timeout: 5000 });
  await page.locator("#agents tr", { hasText: "hermes" }).filter({ hasText: bAddress }).waitFor({ timeout: 10_000 });

  const metrics = await (await fetch(`${a.url}/metrics`)).text();
  assert.match(metrics, /^interop_cluster_brokers\{state="alive"\} 2$/m);
  const bId = (await (await fetch(`${b.url}/status`)).json()).brokers.find((broker: { self: boolean }) => broker.self).id;
  assert.match(metrics, new RegExp(`^interop_stream_broker\\{agent="hermes",broker="${bId}"\\} 1$`, "m"));
});

test("a broker of its own shows no broker table and no stream-on column", async () => {
  await using browser = await launchBrowser();
  await using broker = await startBroker();
  const page = await browser.newPage();
  await page.goto(`${broker.url}/ui`);
  await page.locator("#agents tr", { hasText: "hermes" }).waitFor({ timeout: 5000 });
  assert.equal(await page.locator("#brokers-section").isVisible(), false);
  assert.equal(await page.locator("th.cluster").isVisible(), false);
  assert.doesNotMatch(await (await fetch(`${broker.url}/metrics`)).text(), /interop_cluster_brokers\{/);
});

// Red team 54: the feed rebuilt up to 200 items at each message, each with its whole body: 40 messages of a MiB froze
// the page for seconds, 150 for more than 18 s.
test("the dashboard shows a long message's first 2,000 characters and how many more there are, and the rest of the feed as it is", async () => {
  await using browser = await launchBrowser();
  await using broker = await startBroker();
  const page = await browser.newPage();
  const scriptErrors: string[] = [];
  page.on("pageerror", (error) => scriptErrors.push(error.message));
  const feedOpen = page.waitForResponse((response) => new URL(response.url()).pathname === "/events" && response.ok());
  await page.goto(`${broker.url}/ui`);
  await feedOpen;
  const long = "L".repeat(1000) + "x".repeat(300_000);
  assert.equal((await publish(broker.url, "hermes", "openclaw", { text: long })).status, 200);
  assert.equal((await publish(broker.url, "hermes", "openclaw", { text: "short and whole" })).status, 200);
  await page.locator("#feed li", { hasText: "short and whole" }).waitFor({ timeout: 5000 });
  const shown = await page.locator("#feed li pre").allTextContents();
  assert.deepEqual(shown, ["short and whole", `${long.slice(0, 2000)}\n… (${long.length - 2000} more characters)`]);
  assert.deepEqual(scriptErrors, []);
});
