/** Clients given several brokers (`--url A,B` or `$INTEROP_URL=A,B`) go on to the next when one cannot be reached. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { type AddressInfo, createServer as createTcpServer, type Socket } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { publish, startBroker, waitFor } from "../helpers/broker.ts";
import { cleanUpAll, testStops } from "../helpers/clean_up_all.ts";
import { collect, runCli, spawnCli, tempDir } from "../helpers/cli.ts";
import { startListen, stopListen } from "../helpers/listener.ts";
import { startTcpRelay, type TcpRelay } from "../helpers/tcp_relay.ts";

/** A URL where nothing listens: a port just taken from the kernel and given back. */
async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

/** A server that answers every request as a broker whose PostgreSQL is down does. */
async function storeDownBroker(): Promise<{ url: string; server: Server }> {
  const server = createServer((_request, response) => {
    response.writeHead(503, { "content-type": "application/json", "retry-after": "1" });
    response.end(JSON.stringify({ error: "Storage unavailable: PostgreSQL cannot be reached", code: "storage_unavailable" }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

test("send, poll, ask and agent go on to the second broker when the first cannot be reached, from --url or $INTEROP_URL", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,openclaw,leo"] });
  t.after(() => broker.cleanup());
  const urls = `${await deadUrl()},${broker.url}`;
  const sent = await runCli(["send", "--url", urls, "--from", "hermes", "--to", "openclaw", "one"]);
  assert.equal(sent.code, 0, sent.stderr);
  const fromEnv = await runCli(["send", "--from", "hermes", "--to", "openclaw", "two"], { env: { INTEROP_URL: urls } });
  assert.equal(fromEnv.code, 0, fromEnv.stderr);
  const polled = await runCli(["poll", "--url", urls, "--agent", "openclaw"]);
  assert.deepEqual(polled.stdout.trim().split("\n").map((line) => JSON.parse(line).text), ["one", "two"]);
  const asked = await runCli(["ask", "--url", urls, "--from", "hermes", "--to", "leo", "--timeout", "1", "?"]);
  assert.equal(asked.code, 7, asked.stderr);
  const listed = await runCli(["agent", "list", "--json", "--url", urls]);
  assert.deepEqual(JSON.parse(listed.stdout).map((entry: { agent: string }) => entry.agent), ["hermes", "leo", "openclaw"]);
});

test("a client goes on to the next broker when one answers 503 storage_unavailable, and says so when all are down", async (t) => {
  const stop = testStops(t);
  const down = await storeDownBroker();
  stop(() => new Promise((resolve) => down.server.close(resolve)));
  const broker = await startBroker();
  stop(() => broker.cleanup());
  const sent = await runCli(["send", "--url", `${down.url},${broker.url}`, "--from", "hermes", "--to", "openclaw", "through"]);
  assert.equal(sent.code, 0, sent.stderr);
  const dead = await deadUrl();
  const none = await runCli(["send", "--url", `${dead},${down.url}`, "--from", "hermes", "--to", "openclaw", "lost?"]);
  assert.equal(none.code, 3);
  assert.match(none.stderr, new RegExp(`^error: No broker answered \\(2 tried\\): ${dead}: Cannot reach the broker at ${dead}: ECONNREFUSED.*; ${down.url}: Broker refused \\(HTTP 503\\)`));
  // Red team 53: every broker up, none with its store (PostgreSQL restarting): exit 4, a refusal a script gives up
  // on, where the documented retry loop runs on exit 3.
  const alsoDown = await storeDownBroker();
  stop(() => new Promise((resolve) => alsoDown.server.close(resolve)));
  for (const args of [["send", "--from", "hermes", "--to", "openclaw", "later"], ["poll", "--agent", "openclaw"]]) {
    const later = await runCli([...args, "--url", `${alsoDown.url},${down.url}`]);
    assert.equal(later.code, 3, `${args[0]}: ${later.stderr}`);
    assert.match(later.stderr, /^error: No broker answered \(2 tried\): .*Broker refused \(HTTP 503\)/, args[0]);
  }
});

test("a broker that takes the connection but never answers is left for the next one after the request's timeout", async (t) => {
  const stop = testStops(t);
  const sockets = new Set<Socket>();
  const frozen = createTcpServer((socket) => sockets.add(socket));
  await new Promise<void>((resolve) => frozen.listen(0, "127.0.0.1", resolve));
  stop(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => frozen.close(resolve));
  });
  const broker = await startBroker();
  stop(() => broker.cleanup());
  const frozenUrl = `http://127.0.0.1:${(frozen.address() as AddressInfo).port}`;
  const sent = await runCli(["send", "--url", `${frozenUrl},${broker.url}`, "--from", "hermes", "--to", "openclaw", "late but once"]);
  assert.equal(sent.code, 0, sent.stderr);
  assert.ok(sockets.size > 0, "the frozen broker was tried first");
  const polled = await (await fetch(`${broker.url}/poll?agent=openclaw`)).json();
  assert.deepEqual(polled.map((message: { text: string }) => message.text), ["late but once"]);
});

test("an ask whose connection breaks after the broker had it is not asked again on the next broker", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,openclaw"] });
  let relay: TcpRelay | undefined;
  let ask: ReturnType<typeof spawnCli> | undefined;
  // One hook, the broker last: a later hook does not run once the broker's cleanup throws, and the relay would keep
  // the test run from ending.
  t.after(() => cleanUpAll(() => void ask?.kill(), () => relay?.close(), () => broker.cleanup()));
  relay = await startTcpRelay(broker.url);
  ask = spawnCli(["ask", "--url", `${relay.url},${broker.url}`, "--from", "hermes", "--to", "openclaw", "--timeout", "2s", "only once?"]);
  const questions = async () => (await (await fetch(`${broker.url}/poll?agent=openclaw&peek=1`)).json()).length;
  await waitFor(async () => (await questions()) === 1, 10_000, "the question in openclaw's inbox");
  relay.kill();
  const asked = await collect(ask);
  // In doubt (11): the broker had the question, so it is neither asked again nor reported as never sent (3).
  assert.equal(asked.code, 11, asked.stderr);
  assert.match(asked.stderr, /^error: No answer from the broker at http:\/\/127\.0\.0\.1:\d+ \(.+\) after the request went out: it may have been done\n$/);
  assert.equal(await questions(), 1);
});

test("interop status with several brokers reports each, and an unreachable one is a problem", async (t) => {
  const broker = await startBroker();
  t.after(() => broker.cleanup());
  const dead = await deadUrl();
  const result = await runCli(["status", "--json", "--url", `${broker.url},${dead}`]);
  assert.equal(result.code, 5, result.stderr);
  const report = JSON.parse(result.stdout);
  assert.equal(report.ok, false);
  assert.deepEqual(report.brokers.map((each: { url: string; reachable: boolean }) => [each.url, each.reachable]), [[broker.url, true], [dead, false]]);
  assert.equal(report.brokers[0].pid, broker.pid);
  // Red team 53: `ok` false with an empty top-level `problems`, the reason only inside `brokers`.
  assert.equal(report.problems.length, 1);
  assert.match(report.problems[0], new RegExp(`^${dead}: Cannot reach`));
  const text = await runCli(["status", "--url", `${broker.url},${dead}`]);
  assert.match(text.stdout, new RegExp(`^interop .* at ${broker.url}: pid ${broker.pid}[^]*\\n\\n${dead}: unreachable\\nproblem: Cannot reach`));
  assert.equal((await runCli(["status", "--url", `${dead},${await deadUrl()}`])).code, 3);
});

test("listen resumes on the second broker when the first is killed under it, losing and repeating nothing", async (t) => {
  const stop = testStops(t);
  const dir = tempDir();
  stop(dir.cleanup);
  const first = await startBroker();
  stop(() => first.cleanup());
  const second = await startBroker();
  stop(() => second.cleanup());
  // Two SQLite brokers share no messages: the second has more ids, so the first's id is one it could have assigned;
  // its store identity tells it the id is not its own.
  for (let n = 0; n < 5; n++) await publish(second.url, "openclaw", "hermes", { before: n });
  await (await fetch(`${second.url}/poll?agent=hermes`)).json();
  const listener = startListen(`${first.url},${second.url}`, "hermes", dir.path);
  stop(() => stopListen(listener, "SIGKILL"));
  let stderr = "";
  listener.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const out = join(dir.path, "out.jsonl");
  const lines = () => {
    try {
      return readFileSync(out, "utf8").split("\n").filter((line) => line !== "").map((line) => JSON.parse(line));
    } catch {
      return [];
    }
  };
  await waitFor(() => stderr.includes(`connected to ${first.url}`), 10_000, "listen on the first broker");
  await publish(first.url, "openclaw", "hermes", { text: "via first" });
  await waitFor(() => lines().length === 1, 10_000, "the first broker's message");
  await first.stop("SIGKILL");
  await publish(second.url, "openclaw", "hermes", { text: "via second" });
  await waitFor(() => lines().length >= 2, 15_000, "the second broker's message");
  // Its log line comes through a pipe, and may reach this process after the file has the message (Deno, loaded).
  const moved = new RegExp(`connected to ${second.url} as hermes: another store than id 1's, reading what is pending`);
  await waitFor(() => moved.test(stderr), 5000, "listen to say it moved to the second broker");
  assert.deepEqual(lines().map((line) => line.text), ["via first", "via second"]);
  assert.deepEqual(lines().map((line) => line.interop.id), [1, 6]);
});
