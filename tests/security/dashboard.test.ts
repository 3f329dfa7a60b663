/**
 * Issue 13, hole 7: the dashboard could be framed by any site (clickjacking its send form), and its admin token
 * rode in `/events?token=`, where nginx's access log kept it. Framing is now forbidden, and the page sends the
 * token only in an `Authorization` header.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Browser } from "playwright-core";
import { launchBrowser, serveAttackerPage } from "../helpers/browser.ts";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { runCli, tempDir } from "../helpers/cli.ts";

test("the dashboard's page and script forbid framing: CSP frame-ancestors 'none' and X-Frame-Options: DENY", async (t) => {
  const broker = await startBroker();
  t.after(() => broker.cleanup());
  for (const path of ["/ui", "/ui/app.js"]) {
    const response = await fetch(`${broker.url}${path}`);
    assert.equal(response.status, 200);
    const policy = response.headers.get("content-security-policy") ?? "";
    assert.match(policy, /(^|;\s*)frame-ancestors 'none'(;|$)/, `${path}: ${policy}`);
    assert.match(policy, /(^|;\s*)default-src 'self'(;|$)/, `${path} keeps the rest of its policy: ${policy}`);
    assert.equal(response.headers.get("x-frame-options"), "DENY", path);
    await response.arrayBuffer();
  }
});

test("a page elsewhere that frames the dashboard gets no dashboard in its frame (a real browser)", async () => {
  await using broker = await startBroker();
  await using attacker = await serveAttackerPage(`<!doctype html><iframe src="${broker.url}/ui"></iframe>`);
  await using browser = await launchBrowser();
  const page = await browser.newPage();
  const framed = page.waitForEvent("response", (response) => response.url() === `${broker.url}/ui`);
  await page.goto(attacker.url);
  assert.equal((await framed).status(), 200, "the broker answered the frame's request");
  const frame = (await waitFor(() => page.frames().find((candidate) => candidate !== page.mainFrame()), 5000, "the frame"))!;
  await frame.waitForLoadState("load");
  // Blocked, the frame shows Chromium's error page instead: the dashboard never rendered in it, nor ran its script.
  assert.notEqual(frame.url(), `${broker.url}/ui`, "the frame committed the dashboard");
  assert.equal(await frame.locator("#login-form, #send").count(), 0);
});

test("with an admin token the dashboard puts no token in any URL it requests, and still shows live messages", async (t) => {
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  let browser: Browser | undefined;
  t.after(async () => {
    await browser?.close();
    await broker?.cleanup();
    dir.cleanup();
  });
  broker = await startBroker({ dataDir: dir.path });
  browser = await launchBrowser();
  const admin = (await runCli(["token", "create", "--admin", "--data-dir", dir.path])).stdout.trim();
  const hermes = (await runCli(["token", "create", "--agent", "hermes", "--data-dir", dir.path])).stdout.trim();
  await waitFor(async () => (await fetch(`${broker.url}/stats`)).status === 401, 5000, "tokens to take effect");

  const page = await browser.newPage();
  const requested: { url: string; authorization: string | undefined }[] = [];
  page.on("request", (request) => requested.push({ url: request.url(), authorization: request.headers().authorization }));
  const scriptErrors: string[] = [];
  page.on("pageerror", (error) => scriptErrors.push(error.message));
  // Answered, the feed is open at the broker: a publish now shows live (the request sent alone may not be there yet).
  const feedOpen = page.waitForResponse((response) => new URL(response.url()).pathname === "/events" && response.ok());
  await page.goto(`${broker.url}/ui`);
  await page.fill("#token", admin);
  await page.click("#login-form button");
  await page.locator("#agents tr", { hasText: "hermes" }).waitFor({ timeout: 5000 });
  await feedOpen;

  // Published by an agent while the page watches: it appears in the live feed.
  assert.equal((await publish(broker.url, "hermes", "openclaw", { text: "live while the admin watches" }, { authorization: `Bearer ${hermes}` })).status, 200);
  await page.locator("#feed li", { hasText: "live while the admin watches" }).waitFor({ timeout: 2000 });
  // And the page's own send form works as the admin (a same-origin POST with Origin).
  await page.fill("#from", "hermes");
  await page.selectOption("#to", "openclaw");
  await page.fill("#text", "sent from the dashboard with a token");
  await page.click("#send button");
  await page.locator("#sent", { hasText: /^sent #\d+$/ }).waitFor({ timeout: 5000 });
  await page.locator("#feed li", { hasText: "sent from the dashboard with a token" }).waitFor({ timeout: 2000 });

  for (const { url } of requested) {
    assert.ok(!/[?&]token=/.test(url), `a token in a URL the page requested: ${url.replace(admin, "itk_…")}`);
    assert.ok(!url.includes(admin), "the admin token appears in a requested URL");
  }
  const feed = requested.filter(({ url }) => new URL(url).pathname === "/events");
  assert.ok(feed.every(({ authorization }) => authorization === `Bearer ${admin}`), "the feed sends the token as a header");
  assert.deepEqual(scriptErrors, []);
});

// Red team, session 52: the page asked for /stats, which is an admin's, and took its 403 for a refused token: an
// agent's token, which the login form offers "for its own view", got the login form back.
test("with an agent's token the dashboard shows that agent's view, and says the traffic chart is an admin's", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  await using broker = await startBroker({ dataDir: dir.path });
  await using browser = await launchBrowser();
  const hermes = (await runCli(["token", "create", "--agent", "hermes", "--data-dir", dir.path])).stdout.trim();
  const openclaw = (await runCli(["token", "create", "--agent", "openclaw", "--data-dir", dir.path])).stdout.trim();
  const admin = (await runCli(["token", "create", "--admin", "--data-dir", dir.path])).stdout.trim();
  await waitFor(async () => (await fetch(`${broker.url}/stats`)).status === 401, 5000, "tokens to take effect");
  assert.equal((await publish(broker.url, "openclaw", "hermes", { text: "for hermes's eyes" }, { authorization: `Bearer ${openclaw}` })).status, 200);

  const page = await browser.newPage();
  const scriptErrors: string[] = [];
  page.on("pageerror", (error) => scriptErrors.push(error.message));
  const chartRefused = page.waitForResponse((response) => new URL(response.url()).pathname === "/stats");
  await page.goto(`${broker.url}/ui`);
  await page.fill("#token", hermes);
  await page.click("#login-form button");
  assert.equal((await chartRefused).status(), 403);
  await page.locator("#chart-admin").waitFor({ state: "visible", timeout: 5000 });
  await page.locator("#feed li", { hasText: "for hermes's eyes" }).waitFor({ timeout: 5000 });
  // Refreshed every 2 s: still the agent's view after a refresh, not the login form.
  await page.waitForTimeout(2500);
  assert.equal(await page.locator("#app").isVisible(), true, "the dashboard, not the login form");
  assert.equal(await page.locator("#login").isVisible(), false);
  assert.equal(await page.locator("#chart").isVisible(), false);
  // hermes's token revoked: the login form again; an admin's token then shows the chart (it stayed hidden).
  assert.equal((await runCli(["token", "revoke", "--agent", "hermes", "--data-dir", dir.path])).code, 0);
  await page.locator("#login").waitFor({ state: "visible", timeout: 10_000 });
  await page.fill("#token", admin);
  await page.click("#login-form button");
  await page.locator("#chart").waitFor({ state: "visible", timeout: 5000 });
  assert.equal(await page.locator("#chart-admin").isVisible(), false);
  assert.deepEqual(scriptErrors, []);
});

test("GET /history, the dashboard's look into an inbox, keeps to a token's own inbox and takes, touches and creates nothing", async (t) => {
  const dir = tempDir();
  const broker = await startBroker({ dataDir: dir.path });
  t.after(async () => {
    await broker.cleanup();
    dir.cleanup();
  });
  const create = async (...args: string[]) => (await runCli(["token", "create", ...args, "--data-dir", dir.path])).stdout.trim();
  const admin = await create("--admin");
  const hermes = await create("--agent", "hermes");
  await waitFor(async () => (await fetch(`${broker.url}/history?agent=hermes`)).status === 401, 5000, "tokens to take effect");
  const as = (token: string) => ({ authorization: `Bearer ${token}` });
  assert.equal((await publish(broker.url, "hermes", "openclaw", { text: "for openclaw only" }, as(hermes))).status, 200);

  const refused = await fetch(`${broker.url}/history?agent=openclaw`, { headers: as(hermes) });
  assert.equal(refused.status, 403);
  assert.equal((await refused.json()).code, "forbidden");
  const own = await fetch(`${broker.url}/history?agent=hermes`, { headers: as(hermes) });
  assert.deepEqual(await own.json(), []);

  const before = (await (await fetch(`${broker.url}/status`, { headers: as(admin) })).json()).agents.openclaw;
  const seen = await (await fetch(`${broker.url}/history?agent=openclaw&limit=5`, { headers: as(admin) })).json();
  assert.deepEqual(seen.map((message: { text: string; interop: { pending: boolean } }) => [message.text, message.interop.pending]), [
    ["for openclaw only", true],
  ]);
  const after = (await (await fetch(`${broker.url}/status`, { headers: as(admin) })).json()).agents;
  assert.deepEqual([after.openclaw.pending, after.openclaw.last_seen], [1, before.last_seen], "nothing taken, openclaw not marked seen");
  assert.deepEqual(await (await fetch(`${broker.url}/history?agent=nobody`, { headers: as(admin) })).json(), []);
  assert.equal((await (await fetch(`${broker.url}/status`, { headers: as(admin) })).json()).agents.nobody, undefined, "no inbox created");
});
