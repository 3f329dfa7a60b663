// @ts-types: the SDK's subpath types need pointing at for Deno's checker (see src/cli/mcp.ts).
// @ts-types="../../node_modules/@modelcontextprotocol/sdk/dist/esm/client/index.d.ts"
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { brokerPool, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { testStops } from "../helpers/clean_up_all.ts";
import { collect, runCli, spawnCli, tempDir } from "../helpers/cli.ts";
import { stopAll } from "../helpers/listener.ts";
import { openSse, type SseConnection } from "../helpers/sse.ts";
import { call, connect, type ToolResult } from "../helpers/mcp_client.ts";

const json = (result: ToolResult) => JSON.parse(result.content[0].text);

/** A stand-in broker's answer to one request (by path), given its body and query: a status, a JSON body, headers. */
type StandInAnswer = [number, unknown] | [number, unknown, Record<string, string>];
type StandInRoute = (body: string, query: URLSearchParams) => Promise<StandInAnswer> | StandInAnswer;

/**
 * A stand-in broker on a free port that answers `routes` (404 otherwise), so a test can order what the real one
 * would race. Its URL, and `close`, which ends every connection.
 */
async function standInBroker(routes: Record<string, StandInRoute>): Promise<{ url: string; close(): Promise<void> }> {
  const broker = createServer(async (request: IncomingMessage, response: ServerResponse) => {
    const { pathname, searchParams } = new URL(request.url ?? "/", "http://x");
    const route = routes[pathname];
    let body = "";
    for await (const chunk of request) body += chunk;
    if (route === undefined) return response.writeHead(404).end();
    const [status, answer, headers] = await route(body, searchParams);
    response.writeHead(status, { "content-type": "application/json", ...headers });
    response.end(JSON.stringify(answer));
  });
  await new Promise<void>((resolve) => broker.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(broker.address() as AddressInfo).port}`,
    close: async () => {
      broker.closeAllConnections();
      await new Promise((resolve) => broker.close(resolve));
    },
  };
}

/** A message as the broker hands it out (`GET /poll`). */
const taken = (id: number) => ({ text: `m${id}`, interop: { id, from: "hermes", to: "openclaw", timestamp: new Date().toISOString() } });

test("the MCP server, driven by the SDK's client, sends, waits, asks and lists agents", async () => {
  const broker = await startBroker();
  let hermes: Client | undefined;
  let openclaw: Client | undefined;
  try {
    hermes = await connect(broker.url, "hermes");
    openclaw = await connect(broker.url, "openclaw");
    const { tools } = await hermes.listTools();
    assert.deepEqual(tools.map((tool) => tool.name).sort(), ["agents", "ask", "inbox", "send", "wait"]);
    for (const tool of tools) assert.ok((tool.description ?? "").length > 80, `${tool.name} is described for a model`);

    const sent = json(await call(hermes, "send", { to: "openclaw", text: "hello from hermes" }));
    assert.equal(sent.sent, true);
    const waited = json(await call(openclaw, "wait", { timeout_seconds: 10 }));
    assert.equal(waited.message.text, "hello from hermes");
    assert.equal(waited.message.interop.from, "hermes");
    assert.deepEqual(json(await call(openclaw, "wait", { timeout_seconds: 0.2 })), { message: null });

    const asking = call(hermes, "ask", { to: "openclaw", text: "what is 6 x 7?", timeout_seconds: 20 });
    const question = json(await call(openclaw, "wait", { timeout_seconds: 10 })).message;
    assert.equal(question.text, "what is 6 x 7?");
    await call(openclaw, "send", { json: { answer: 42 }, reply_to: question.interop.id });
    const { reply } = json(await asking);
    assert.equal(reply.answer, 42);
    assert.equal(reply.interop.reply_to, question.interop.id);

    await call(hermes, "send", { to: "openclaw", text: "one" });
    await call(hermes, "send", { to: "openclaw", json: { two: 2 } });
    const inbox = json(await call(openclaw, "inbox"));
    assert.deepEqual(inbox.map((message: { text?: string; two?: number }) => message.text ?? message.two), ["one", 2]);
    assert.deepEqual(json(await call(openclaw, "inbox")), []);

    const agents = json(await call(hermes, "agents"));
    assert.equal(agents.openclaw.online, true);
    assert.equal(agents.hermes.pending, 0);
  } finally {
    await hermes?.close();
    await openclaw?.close();
    await broker.cleanup();
  }
});

test("interop mcp's ask gets its reply while interop listen runs on the same agent, which gets what came before and after it", async (t) => {
  const stop = testStops(t);
  // Hermes's usual setup: `interop listen --agent hermes` and Hermes's MCP `ask` on one inbox. On a broker of its own
  // the stream took the reply as it arrived, and the ask timed out although the reply was delivered.
  const broker = await startBroker();
  const dir = tempDir();
  const listen = spawnCli(["listen", "--agent", "hermes", "--url", broker.url, "--state", join(dir.path, "state.json")]);
  stop(async () => {
    await stopAll(listen);
    await broker.cleanup();
    dir.cleanup();
  });
  let stdout = "";
  listen.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  const listened = () => stdout.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line).text);
  const status = async () => await (await fetch(`${broker.url}/status`)).json();
  await waitFor(async () => (await status()).subscribers?.hermes, 10_000, "listen's stream");
  const hermes = await connect(broker.url, "hermes");
  stop(() => hermes.close());
  const asking = call(hermes, "ask", { to: "openclaw", text: "deploy?", timeout_seconds: 20 });
  // The question stored and the ask's long poll at the broker.
  const question = await waitFor(async () => {
    if ((await status()).agents?.hermes?.waiting !== 1) return undefined;
    return (await (await fetch(`${broker.url}/poll?agent=openclaw&peek=1`)).json())[0]?.interop.id;
  }, 10_000, "the ask's long poll");
  for (const args of [["before"], ["--reply-to", String(question), "yes, deploy"], ["after"]]) {
    const sent = await runCli(["send", "--url", broker.url, "-f", "openclaw", "-t", "hermes", ...args]);
    assert.equal(sent.code, 0, sent.stderr);
  }
  const answered = await asking;
  assert.ok(!answered.isError, answered.content[0].text);
  assert.equal(json(answered).reply.text, "yes, deploy");
  await waitFor(() => listened().length >= 2, 10_000, "listen's two messages");
  assert.deepEqual(listened(), ["before", "after"]);
  assert.equal((await status()).agents.hermes.pending, 0);
});

test("interop mcp's asks of an agent that answers at once from its stream get every reply while interop listen runs on the asker", async (t) => {
  const stop = testStops(t);
  // A reply committed between the question's send and the ask's first leased wait went to listen's stream, and the
  // ask answered "No reply": 7-11 of 20 asks before hold_reply (askhold30).
  const broker = await startBroker();
  const dir = tempDir();
  const listen = spawnCli(["listen", "--agent", "hermes", "--url", broker.url, "--state", join(dir.path, "state.json")]);
  const answerer = new AbortController();
  stop(async () => {
    answerer.abort();
    await stopAll(listen);
    await broker.cleanup();
    dir.cleanup();
  });
  let stdout = "";
  listen.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  const status = async () => await (await fetch(`${broker.url}/status`)).json();
  await waitFor(async () => (await status()).subscribers?.hermes, 10_000, "listen's stream");
  // openclaw answers each question as its stream delivers it, as a script or a fast tool does.
  await fetch(`${broker.url}/broadcast?from=hermes&to=openclaw`, { method: "POST", body: JSON.stringify({ text: "hello" }) });
  const stream = await fetch(`${broker.url}/subscribe?agent=openclaw`, { signal: answerer.signal });
  void (async () => {
    let buffer = "";
    for await (const chunk of stream.body!.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
        const data = buffer.slice(0, end).split("\n").find((line) => line.startsWith("data: "));
        buffer = buffer.slice(end + 2);
        const question = data === undefined ? undefined : JSON.parse(data.slice(6));
        if (question?.text !== "deploy?") continue;
        void fetch(`${broker.url}/broadcast?from=openclaw&reply_to=${question.interop.id}`, { method: "POST", body: JSON.stringify({ text: "yes" }) });
      }
    }
  })().catch(() => {});
  const hermes = await connect(broker.url, "hermes");
  stop(() => hermes.close());
  for (let round = 0; round < 10; round++) {
    const answered = await call(hermes, "ask", { to: "openclaw", text: "deploy?", timeout_seconds: 5 });
    assert.ok(!answered.isError, `round ${round}: ${answered.content[0].text}`);
    assert.equal(json(answered).reply.text, "yes");
  }
  assert.equal(stdout, "", "listen had none of the replies");
});

test("bad MCP tool arguments give tool errors, and the server keeps serving", async () => {
  const broker = await startBroker();
  let hermes: Client | undefined;
  try {
    hermes = await connect(broker.url, "hermes");
    const neither = await call(hermes, "send", { to: "openclaw" });
    assert.equal(neither.isError, true);
    assert.match(neither.content[0].text, /exactly one of text or json/);
    const badName = await call(hermes, "send", { to: "Bad Name", text: "x" });
    assert.equal(badName.isError, true);
    assert.match(badName.content[0].text, /Invalid agent name/);
    const badType = await call(hermes, "wait", { timeout_seconds: "soon" }).catch((error: Error) => ({
      isError: true,
      content: [{ type: "text", text: error.message }],
    }));
    assert.equal(badType.isError, true);
    const unknownReply = await call(hermes, "send", { text: "x", reply_to: 999 });
    assert.equal(unknownReply.isError, true);
    assert.match(unknownReply.content[0].text, /Cannot reply to message 999/);
    assert.equal(typeof json(await call(hermes, "agents")).hermes, "object", "still serving");
  } finally {
    await hermes?.close();
    await broker.cleanup();
  }
});

test("an MCP session whose agent the operator removed while it waited reports the removal and does not create the agent again", async () => {
  const broker = await startBroker();
  let zora: Client | undefined;
  const agents = async () => Object.keys((await (await fetch(`${broker.url}/status`)).json()).agents);
  try {
    zora = await connect(broker.url, "zora");
    // A wait in flight, as an agent idle in its loop keeps one.
    const waiting = call(zora, "wait", { timeout_seconds: 60 });
    await waitFor(async () => (await agents()).includes("zora"), 10_000, "zora's inbox, created by its wait");
    const removed = await runCli(["agent", "remove", "zora", "--force", "--url", broker.url]);
    assert.equal(removed.code, 0, removed.stderr);
    // The long poll in flight ends with the removal (410, naming the store), and the next read is refused instead of
    // creating zora again.
    const ended = await waiting;
    assert.equal(ended.isError, true);
    assert.match(ended.content[0].text, /zora was removed by the operator: this session no longer reads its inbox/);
    const inbox = await call(zora, "inbox");
    assert.equal(inbox.isError, true);
    assert.match(inbox.content[0].text, /zora was removed by the operator/);
    // An ask holds its reply in zora's inbox: refused too, sending nothing (red team, session 47: it made zora
    // again and waited for a reply that had nowhere to go).
    const asked = await call(zora, "ask", { to: "hermes", text: "still there?", timeout_seconds: 2 });
    assert.equal(asked.isError, true);
    assert.match(asked.content[0].text, /zora was removed by the operator/);
    assert.ok(!(await agents()).includes("zora"), "zora stays removed");
    const sent = await runCli(["send", "--from", "hermes", "--to", "zora", "still here?", "--url", broker.url]);
    assert.notEqual(sent.code, 0, "a send to the removed agent is refused");
  } finally {
    await zora?.close();
    await broker.cleanup();
  }
});

test("an MCP wait rides through a restart of its broker within its timeout: the message sent after it comes", async (t) => {
  // Red team 56: the restart failed the wait at once (ECONNREFUSED), and the model was told its inbox read failed.
  const dir = tempDir();
  const held: { first?: RunningBroker; second?: RunningBroker; hermes?: Client } = {};
  t.after(async () => {
    await held.hermes?.close();
    await held.first?.cleanup();
    await held.second?.cleanup();
    dir.cleanup();
  });
  held.first = await startBroker({ dataDir: dir.path });
  held.hermes = await connect(held.first.url, "hermes");
  const waiting = call(held.hermes, "wait", { timeout_seconds: 30 });
  await waitFor(async () => (await (await fetch(`${held.first!.url}/status`)).json()).agents.hermes !== undefined, 10_000, "the wait");
  await held.first.stop();
  await new Promise((resolve) => setTimeout(resolve, 2000));
  held.second = await startBroker({ dataDir: dir.path, port: held.first.port });
  await runCli(["send", "--from", "openclaw", "--to", "hermes", "after the restart", "--url", held.second.url]);
  const waited = await waiting;
  assert.notEqual(waited.isError, true, waited.content[0].text);
  assert.equal(json(waited).message.text, "after the restart");
});

test("interop mcp's inbox and wait refuse to read while a stream hands the agent's messages on; send and ask still work", async (t) => {
  // Red team 57: `interop integrate openclaw` sets up the MCP server and a listener on one inbox; a stream heeds no
  // lease, so what inbox or wait showed, the listener could hand on as a turn too.
  const broker = await startBroker();
  const held: { hermes?: Client; stream?: SseConnection } = {};
  t.after(async () => {
    held.stream?.close();
    await held.hermes?.close();
    await broker.cleanup();
  });
  held.hermes = await connect(broker.url, "hermes");
  held.stream = await openSse(`${broker.url}/subscribe?agent=hermes`);
  await runCli(["send", "--from", "openclaw", "--to", "hermes", "to the stream", "--url", broker.url]);
  assert.equal(JSON.parse((await held.stream.take(1))[0].data).text, "to the stream");
  for (const [tool, args] of [["inbox", {}], ["wait", { timeout_seconds: 1 }]] as const) {
    const refused = await call(held.hermes, tool, args);
    assert.equal(refused.isError, true, tool);
    assert.match(refused.content[0].text, /hermes's messages are handed on by a stream .*Use send and ask here/);
  }
  assert.equal(json(await call(held.hermes, "send", { to: "openclaw", text: "still sends" })).sent, true);
  held.stream.close();
  await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).agents.hermes.streams === 0, 10_000, "the stream's end");
  await runCli(["send", "--from", "openclaw", "--to", "hermes", "to the inbox", "--url", broker.url]);
  assert.equal(json(await call(held.hermes, "wait", { timeout_seconds: 5 })).message.text, "to the inbox");
});

// The wait case as OpenClaw's MCP client meets it when a call passes its request timeout or its turn is aborted:
// a server that hung up its long poll on the cancel lost the message the broker had taken for it. `held` is the
// request the cancel crosses, on a broker older than leased reads (under a lease the take comes only after the
// answer was written: tests/e2e/mcp_killed.test.ts): an inbox call's take (its peek, answered at once, takes
// nothing), a wait answered with the message taken.
const cancelledCalls = [
  { tool: "inbox", route: "/poll", args: {}, answer: [taken(7)], held: (query: URLSearchParams) => query.has("up_to") },
  { tool: "wait", route: "/wait", args: { timeout_seconds: 3 }, answer: taken(7), held: () => true },
];
for (const { tool, route, args, answer, held } of cancelledCalls) {
  test(`a message taken for ${tool === "inbox" ? "an" : "a"} ${tool} call cancelled while the broker answered is parked when the client closes stdin`, async () => {
    // A stand-in broker lets the test order things: the call is answered only once the server has read the cancel
    // (a later request reached the broker, and stdin is read in order). The client then ends the session as the
    // SDK's client does, by closing stdin: the server must still park what it holds.
    const { promise: callReleased, resolve: releaseCall } = Promise.withResolvers<void>();
    const { promise: callCame, resolve: callArrived } = Promise.withResolvers<void>();
    const { promise: statusCame, resolve: statusArrived } = Promise.withResolvers<void>();
    const parked: Array<{ id: number; reason: string }> = [];
    const { promise: parkCame, resolve: parkArrived } = Promise.withResolvers<void>();
    const broker = await standInBroker({
      [route]: async (_body, query) => {
        if (!held(query)) return [200, answer];
        callArrived();
        await callReleased;
        return [200, answer];
      },
      "/status": () => {
        statusArrived();
        return [200, { agents: {} }];
      },
      "/dead-letters": (body) => {
        parked.push(JSON.parse(body));
        parkArrived();
        return [200, { parked: true }];
      },
    });
    let openclaw: Client | undefined;
    try {
      openclaw = await connect(broker.url, "openclaw");
      const cancel = new AbortController();
      const cancelled = openclaw.callTool({ name: tool, arguments: args }, undefined, { signal: cancel.signal });
      await callCame;
      cancel.abort("the turn was aborted");
      await assert.rejects(cancelled, /the turn was aborted/);
      const agents = call(openclaw, "agents");
      await statusCame;
      releaseCall();
      await agents;
      await openclaw.close();
      openclaw = undefined;
      await Promise.race([parkCame, new Promise((_, reject) => setTimeout(() => reject(new Error("nothing was parked")), 10_000).unref())]);
      assert.deepEqual(parked.map((message) => message.id), [7]);
      assert.match(parked[0].reason, /taken for an MCP call its client cancelled/);
    } finally {
      releaseCall();
      await openclaw?.close();
      await broker.close();
    }
  });
}

/**
 * `interop mcp -a openclaw` driven with raw JSON-RPC lines (to order what the SDK's client would not), initialized;
 * killed after the test if it is still running. `seen` is what it wrote to stdout so far.
 */
async function rawSession(t: { after(fn: () => unknown): void }, url: string) {
  const server = spawnCli(["mcp", "--agent", "openclaw", "--url", url]);
  t.after(() => {
    if (server.exitCode === null && server.signalCode === null) server.kill("SIGKILL");
  });
  let stdout = "";
  server.stdout!.on("data", (chunk: Buffer) => (stdout += chunk));
  const answered = (id: number) => waitFor(() => stdout.includes(`"id":${id}`), 10_000, `the answer to request ${id}`);
  const exited = collect(server);
  const send = (message: unknown) => server.stdin!.write(JSON.stringify({ jsonrpc: "2.0", ...message as object }) + "\n");
  send({ id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "test", version: "1" } } });
  await answered(1);
  send({ method: "notifications/initialized" });
  return { server, send, answered, exited, seen: () => stdout };
}

// Red team 63: the SDK's JSON.parse read a Python client's 64-bit number as another value, which send stored as sent.
test("interop mcp refuses a call holding a number a float would not keep (-32602, nothing sent), and serves the lines around it", async (t) => {
  const broker = await brokerPool(t)();
  const { server, answered, exited, seen } = await rawSession(t, broker.url);
  const call = (id: number | string, json: string) =>
    `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"send","arguments":{"to":"hermes","json":${json}}}}\n`;
  // Four lines in two writes, the second split between them inside a character's UTF-8 bytes.
  const second = Buffer.from(call(3, '{"n":9007199254740992,"é":"ü"}'));
  const split = second.indexOf(Buffer.from("é")) + 1;
  server.stdin!.write(Buffer.concat([Buffer.from(call(2, '{"order":12345678901234567890}')), second.subarray(0, split)]));
  server.stdin!.write(Buffer.concat([second.subarray(split), Buffer.from(call('"x"', '{"big":1e400}') + call(4, '{"n":1}'))]));
  await answered(4);
  server.stdin!.end();
  assert.equal((await exited).code, 0);
  const answers = new Map(seen().trim().split("\n").map((line) => JSON.parse(line)).map((answer) => [answer.id, answer]));
  for (const id of [2, "x"]) {
    assert.equal(answers.get(id)?.error?.code, -32602, seen());
    assert.match(answers.get(id).error.message, /^Invalid body: the number (12345678901234567890|1e400) would not be kept exactly/);
  }
  assert.equal(answers.get(3)?.result?.isError, undefined, seen());
  assert.equal(answers.get(4)?.result?.isError, undefined, seen());
  const inbox = await (await fetch(`${broker.url}/poll?agent=hermes`)).json();
  assert.deepEqual(inbox.map(({ interop: _, ...payload }: Record<string, unknown>) => payload), [{ n: 9007199254740992, "é": "ü" }, { n: 1 }]);
});

// The SDK's stdio transport closed the session on a line over its 10 MiB, answering nothing.
test("interop mcp refuses a line longer than the SDK reads (-32600) and serves the next request", async (t) => {
  const broker = await brokerPool(t)();
  const { server, send, answered, exited, seen } = await rawSession(t, broker.url);
  const text = "é".repeat(6 * 1024 * 1024); // 12 MiB of UTF-8 in 6 Mi characters
  send({ id: 2, method: "tools/call", params: { name: "send", arguments: { to: "hermes", text } } });
  send({ id: 3, method: "tools/call", params: { name: "agents", arguments: {} } });
  await answered(3);
  const refusal = seen().split("\n").find((line) => line.includes('"id":null'));
  assert.match(refusal ?? seen().slice(0, 2000), /"code":-32600,"message":"Invalid Request: a line of 12,\d{3},\d{3} bytes, over the 10,485,760 one request/);
  server.stdin!.end();
  assert.equal((await exited).code, 0);
  assert.deepEqual(await (await fetch(`${broker.url}/poll?agent=hermes`)).json(), [], "nothing of it sent");
});

// OpenClaw, session 50: stdin closed right after a tools/call (in one write here). The call's handler started after the
// session's end had looked at the calls running: it exited 1 at once saying the call was still running 30 s later,
// and its peek, in flight, left the inbox leased from the next session (409) for the lease's length (8 of 8).
test("interop mcp whose stdin ends right after a call waits for that call: exit 0, the inbox free and its message still there", async (t) => {
  const broker = await brokerPool(t)();
  assert.equal((await fetch(`${broker.url}/poll?agent=openclaw`)).status, 200);
  const published = await fetch(`${broker.url}/broadcast?from=hermes&to=openclaw`, { method: "POST", body: '{"text":"still here"}' });
  assert.equal(published.status, 200);
  const { server, exited, seen } = await rawSession(t, broker.url);
  server.stdin!.end(JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "inbox", arguments: {} } }) + "\n");
  const { code, stderr } = await exited;
  assert.equal(code, 0, stderr);
  assert.doesNotMatch(stderr, /still running/);
  const next = await fetch(`${broker.url}/poll?agent=openclaw&peek=1&lease=5`);
  assert.equal(next.status, 200, "the next reader finds the inbox leased");
  const left = (await next.json()).map((message: { text: string }) => message.text);
  // Whether the call's peek came back before the close cancelled it is a race (on a loaded machine it often does):
  // the message is then in the call's answer, taken; otherwise it is still in the inbox. Once, either way.
  const answered = seen().split("\n").some((line) => line.includes('"id":2') && line.includes("still here"));
  assert.deepEqual(left, answered ? [] : ["still here"], seen());
});

test("interop mcp parks every message it holds at the session's end, names one the broker refuses on stderr, and exits 1", async (t) => {
  const stop = testStops(t);
  // Driven with raw JSON-RPC lines, to see the exit code: the inbox call takes 5, 6 and 7 but is cancelled first
  // (the agents call after the cancel shows the server read it before the take is answered); the broker then
  // refuses to park 5 (removed by retention meanwhile).
  const { promise: pollReleased, resolve: releasePoll } = Promise.withResolvers<void>();
  const { promise: pollCame, resolve: pollArrived } = Promise.withResolvers<void>();
  const { promise: statusCame, resolve: statusArrived } = Promise.withResolvers<void>();
  const parked: number[] = [];
  const broker = await standInBroker({
    // The peek is answered at once (as by a broker older than leased peeks: with no lease), the take once the
    // cancel was read.
    "/poll": async (_body, query) => {
      if (query.get("peek") === "1") return [200, [5, 6, 7].map(taken)];
      pollArrived();
      await pollReleased;
      return [200, [5, 6, 7].map(taken)];
    },
    "/status": () => {
      statusArrived();
      return [200, { agents: {} }];
    },
    "/dead-letters": (body) => {
      const { id } = JSON.parse(body);
      if (id === 5) return [404, { error: "Message 5 not found", code: "not_found" }];
      parked.push(id);
      return [200, { parked: true }];
    },
  });
  stop(async () => {
    releasePoll();
    await broker.close();
  });
  const server = spawnCli(["mcp", "--agent", "openclaw", "--url", broker.url]);
  stop(() => {
    if (server.exitCode === null && server.signalCode === null) server.kill("SIGKILL");
  });
  const answered = (id: number) =>
    new Promise<void>((resolve) => {
      let seen = "";
      server.stdout!.on("data", (chunk: Buffer) => {
        seen += chunk;
        if (seen.includes(`"id":${id}`)) resolve();
      });
    });
  const exited = collect(server);
  const send = (message: unknown) => server.stdin!.write(JSON.stringify({ jsonrpc: "2.0", ...message as object }) + "\n");
  const initialized = answered(1);
  send({ id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "test", version: "1" } } });
  await initialized;
  send({ method: "notifications/initialized" });
  send({ id: 2, method: "tools/call", params: { name: "inbox", arguments: {} } });
  await pollCame;
  send({ method: "notifications/cancelled", params: { requestId: 2, reason: "the turn was aborted" } });
  const listed = answered(3);
  send({ id: 3, method: "tools/call", params: { name: "agents", arguments: {} } });
  await statusCame;
  releasePoll();
  await listed;
  server.stdin!.end();
  const { code, stderr } = await exited;
  assert.deepEqual(parked, [6, 7]);
  assert.match(stderr, /could not park message 5 /);
  assert.equal(code, 1, stderr);
});

test("interop mcp parks a message whose inbox answer a cancel crossed on the wire, when the session ends before another call", async (t) => {
  // Raw JSON-RPC lines put the cancel after the answer, as a client that cancelled just before the answer reached
  // it does (and then drops the answer): the message it never saw must not be lost.
  const parked: number[] = [];
  const broker = await standInBroker({
    "/poll": () => [200, [taken(7)]],
    "/status": () => [200, { agents: {} }],
    "/dead-letters": (body) => {
      parked.push(JSON.parse(body).id);
      return [200, { parked: true }];
    },
  });
  t.after(() => broker.close());
  const { server, send, answered, exited, seen } = await rawSession(t, broker.url);
  send({ id: 2, method: "tools/call", params: { name: "inbox", arguments: {} } });
  await answered(2);
  assert.match(seen(), /m7/);
  send({ method: "notifications/cancelled", params: { requestId: 2, reason: "the turn was aborted" } });
  // stdin is read in order: once 3 is answered, the cancel was read.
  send({ id: 3, method: "tools/call", params: { name: "agents", arguments: {} } });
  await answered(3);
  server.stdin!.end();
  const { code, stderr } = await exited;
  assert.equal(code, 0, stderr);
  assert.deepEqual(parked, [7]);
});

test("interop mcp killed after a cancel crossed an inbox answer: the agent's next session returns the message, marked (before: lost)", async (t) => {
  const broker = await brokerPool(t)();
  const published = await fetch(`${broker.url}/broadcast?from=hermes&to=openclaw`, { method: "POST", body: '{"text":"crossed"}' });
  const { id } = await published.json();
  const first = await rawSession(t, broker.url);
  first.send({ id: 2, method: "tools/call", params: { name: "inbox", arguments: {} } });
  await first.answered(2);
  first.send({ method: "notifications/cancelled", params: { requestId: 2, reason: "the turn was aborted" } });
  // stdin is read in order: once 3 is answered, the cancel was read, and the message is held for the next call.
  first.send({ id: 3, method: "tools/call", params: { name: "agents", arguments: {} } });
  await first.answered(3);
  // Taken from the inbox once the answer was written: the broker no longer has it to give.
  await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).agents.openclaw.pending === 0, 5000, "the take");
  first.server.kill("SIGKILL");
  await first.exited;

  const next = await rawSession(t, broker.url);
  next.send({ id: 2, method: "tools/call", params: { name: "inbox", arguments: {} } });
  await next.answered(2);
  const [line] = next.seen().split("\n").filter((text) => text.includes('"id":2'));
  const [message] = JSON.parse(JSON.parse(line).result.content[0].text);
  assert.deepEqual([message.text, message.interop.id, message.interop.redelivered], ["crossed", id, true]);
  next.server.stdin!.end();
  assert.equal((await next.exited).code, 0);
});

test("interop mcp's agents call answers after the take of an ask's reply just shown: the asker's own count no longer holds it", async (t) => {
  // The reply is taken once the ask's answer was written, a round trip later: an agents call right after the ask
  // listed it as still pending for the asker (CI's Deno run, tests above), where wait and inbox find nothing.
  const seen: string[] = [];
  const reply = { text: "yes", interop: { id: 8, from: "hermes", to: "openclaw", reply_to: 5, timestamp: new Date().toISOString() } };
  const broker = await standInBroker({
    "/broadcast": () => [200, { id: 5, ids: [5] }],
    "/wait": () => [200, reply, { "interop-lease": "lease-1" }],
    "/poll": async (_body, query) => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      seen.push(`take ${query.get("take")}`);
      return [200, [reply]];
    },
    "/status": () => {
      seen.push("status");
      return [200, { agents: {} }];
    },
  });
  t.after(() => broker.close());
  const { server, send, answered, exited } = await rawSession(t, broker.url);
  send({ id: 2, method: "tools/call", params: { name: "ask", arguments: { to: "hermes", text: "deploy?", timeout_seconds: 30 } } });
  await answered(2);
  send({ id: 3, method: "tools/call", params: { name: "agents", arguments: {} } });
  await answered(3);
  server.stdin!.end();
  const { code, stderr } = await exited;
  assert.equal(code, 0, stderr);
  assert.deepEqual(seen, ["take 8", "status"]);
});

test("interop mcp parks a message held for a cancelled wait before OpenClaw's close kills it, while another wait's long poll is in flight", async (t) => {
  const stop = testStops(t);
  // OpenClaw's stdio client ends a session by closing stdin, sends SIGTERM 2 s later and SIGKILL 2 s after that. Two
  // waits it gave up on (request timeout) are still in their long polls: the first takes message 7, the second's
  // never answers before the kill. A server that parked only after every call ended was killed holding 7.
  const { promise: firstReleased, resolve: releaseFirst } = Promise.withResolvers<void>();
  const { promise: secondReleased, resolve: releaseSecond } = Promise.withResolvers<void>();
  const waitsCame = [Promise.withResolvers<void>(), Promise.withResolvers<void>()];
  let waits = 0;
  const parked: number[] = [];
  const broker = await standInBroker({
    "/wait": async () => {
      const nth = waits++;
      waitsCame[nth]?.resolve();
      if (nth === 0) {
        await firstReleased;
        return [200, taken(7)];
      }
      await secondReleased;
      return [204, null];
    },
    "/dead-letters": (body) => {
      parked.push(JSON.parse(body).id);
      return [200, { parked: true }];
    },
  });
  stop(async () => {
    releaseFirst();
    releaseSecond();
    await broker.close();
  });
  const server = spawnCli(["mcp", "--agent", "openclaw", "--url", broker.url]);
  stop(() => {
    if (server.exitCode === null && server.signalCode === null) server.kill("SIGKILL");
  });
  let seen = "";
  server.stdout!.on("data", (chunk: Buffer) => (seen += chunk));
  const exited = collect(server);
  const send = (message: unknown) => server.stdin!.write(JSON.stringify({ jsonrpc: "2.0", ...message as object }) + "\n");
  send({ id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "test", version: "1" } } });
  await waitFor(() => seen.includes(`"id":1`), 10_000, "the answer to initialize");
  send({ method: "notifications/initialized" });
  send({ id: 2, method: "tools/call", params: { name: "wait", arguments: { timeout_seconds: 30 } } });
  await waitsCame[0].promise;
  send({ method: "notifications/cancelled", params: { requestId: 2, reason: "Request timed out" } });
  send({ id: 3, method: "tools/call", params: { name: "wait", arguments: { timeout_seconds: 30 } } });
  await waitsCame[1].promise;
  send({ method: "notifications/cancelled", params: { requestId: 3, reason: "Request timed out" } });
  releaseFirst();
  server.stdin!.end();
  const exitedWithin = (ms: number) =>
    Promise.race([exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms).unref())]);
  if (!await exitedWithin(2_000)) server.kill("SIGTERM");
  if (!await exitedWithin(2_000)) server.kill("SIGKILL");
  await exited;
  assert.deepEqual(parked, [7]);
  assert.equal(waits, 2, "the second wait's long poll was never hung up or repeated");
});

test("interop mcp leaves a message a cancelled wait was shown at the head of the inbox, not taken and not parked", async (t) => {
  // OpenClaw cancels a wait when its turn is aborted and closes the session soon after. The wait's long poll took
  // the message that came in that moment, and the session's end parked it as a dead letter: the agent never got
  // it unless an operator acted. Now the long poll only shows it (under a lease), and the cancelled call takes nothing.
  const stop = testStops(t);
  const broker = await startBroker();
  stop(() => broker.cleanup());
  const { server, send, answered, exited } = await rawSession({ after: stop }, broker.url);
  send({ id: 2, method: "tools/call", params: { name: "wait", arguments: { timeout_seconds: 30 } } });
  // stdin is read in order: once 3 is answered, the wait's long poll is on its way (a wait cancelled before it
  // started one takes nothing either way), and once 4 is, the cancel was read.
  send({ id: 3, method: "tools/call", params: { name: "agents", arguments: {} } });
  await answered(3);
  send({ method: "notifications/cancelled", params: { requestId: 2, reason: "the turn was aborted" } });
  send({ id: 4, method: "tools/call", params: { name: "agents", arguments: {} } });
  await answered(4);
  const sent = await runCli(["send", "--url", broker.url, "-f", "hermes", "-t", "openclaw", "while the turn was aborted"]);
  assert.equal(sent.code, 0, sent.stderr);
  server.stdin!.end();
  const { code, stderr } = await exited;
  assert.equal(code, 0, stderr);
  await assertLeftInInbox(broker.url, /while the turn was aborted/);
});

test("interop mcp leaves the reply a cancelled ask was shown in the inbox, not taken and not parked", async (t) => {
  // OpenClaw cancels an ask when its turn is aborted or times out. The ask's long poll took the reply that came in
  // that moment, and the session's end parked it as a dead letter. Now the long poll only shows it (under a lease).
  const stop = testStops(t);
  const broker = await startBroker();
  stop(() => broker.cleanup());
  const { server, send, answered, exited } = await rawSession({ after: stop }, broker.url);
  send({ id: 2, method: "tools/call", params: { name: "ask", arguments: { to: "hermes", text: "deploy?", timeout_seconds: 30 } } });
  // The question stored and the ask's long poll at the broker (counted as waiting): the cancel comes while it waits.
  const question = await waitFor(async () => {
    const status = await (await fetch(`${broker.url}/status`)).json();
    if (status.agents?.openclaw?.waiting !== 1) return undefined;
    return (await (await fetch(`${broker.url}/poll?agent=hermes&peek=1`)).json())[0]?.interop.id;
  }, 10_000, "the ask's long poll");
  send({ method: "notifications/cancelled", params: { requestId: 2, reason: "the turn was aborted" } });
  send({ id: 3, method: "tools/call", params: { name: "agents", arguments: {} } });
  await answered(3);
  const sent = await runCli(["send", "--url", broker.url, "-f", "hermes", "--reply-to", String(question), "yes, deploy"]);
  assert.equal(sent.code, 0, sent.stderr);
  server.stdin!.end();
  const { code, stderr } = await exited;
  assert.equal(code, 0, stderr);
  await assertLeftInInbox(broker.url, /yes, deploy/);
});

/** What a cancelled call was shown is in openclaw's inbox (`interop poll` prints it), and nothing was parked. */
async function assertLeftInInbox(url: string, text: RegExp): Promise<void> {
  const polled = await runCli(["poll", "--url", url, "-a", "openclaw"]);
  assert.equal(polled.code, 0, polled.stderr);
  assert.match(polled.stdout, text);
  const letters = await (await fetch(`${url}/dead-letters?agent=openclaw`)).json();
  assert.deepEqual(letters, []);
}

// Red team 53: the MCP SDK's client sends notifications/cancelled for every call made with a signal aborted later,
// answered or not (it never removes its abort listener). A host that passes its turn's signal to each call and stops
// the turn after the model read its inbox had those messages shown again unmarked, or parked at the session's end as
// if the agent never got them.
test("a cancel the SDK sends for an inbox call it already read shows its messages again marked redelivered, and parks them so marked at the session's end", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,openclaw"] });
  t.after(() => broker.cleanup());
  const send = async (text: string) => assert.equal((await fetch(`${broker.url}/broadcast?from=hermes&to=openclaw`, { method: "POST", body: JSON.stringify({ text }) })).status, 200);
  const openclaw = await connect(broker.url, "openclaw");
  let closed = false;
  t.after(() => closed ? undefined : openclaw.close());
  await send("first");
  const turn = new AbortController();
  const read = json(await openclaw.callTool({ name: "inbox", arguments: {} }, undefined, { signal: turn.signal }) as ToolResult);
  assert.deepEqual(read.map((message: { text: string; interop: { redelivered?: boolean } }) => [message.text, message.interop.redelivered]), [["first", undefined]]);
  // The turn ends after the model read the answer: the SDK sends a cancel for the answered call.
  turn.abort("the turn was stopped");
  const again = await waitFor(async () => {
    const messages = json(await call(openclaw, "inbox"));
    return messages.length > 0 ? messages : undefined;
  }, 10_000, "the message shown again");
  assert.deepEqual(again.map((message: { text: string; interop: { redelivered?: boolean } }) => [message.text, message.interop.redelivered]), [["first", true]]);

  await send("second");
  const secondTurn = new AbortController();
  const readSecond = json(await openclaw.callTool({ name: "inbox", arguments: {} }, undefined, { signal: secondTurn.signal }) as ToolResult);
  assert.deepEqual(readSecond.map((message: { text: string }) => message.text), ["second"]);
  secondTurn.abort("the turn was stopped");
  // stdin is read in order: once this call is answered, the cancel was read.
  await call(openclaw, "agents");
  await openclaw.close();
  closed = true;
  const letters = await waitFor(async () => {
    const parked = await (await fetch(`${broker.url}/dead-letters?agent=openclaw`)).json();
    return parked.length > 0 ? parked : undefined;
  }, 10_000, "the second message parked");
  assert.equal(letters.length, 1);
  assert.equal(letters[0].message.text, "second");
  assert.match(JSON.stringify(letters[0]), /cancelled after the answer holding it was written \(the agent may have read it\)/);
});

// Red team 53: a line that is not JSON, or not a JSON-RPC message, got no answer at all (the SDK's stdio transport
// only reports it to the server's onerror), so a client waited for one until its own timeout.
test("interop mcp answers a line that is not JSON with -32700 and one that is no JSON-RPC message with -32600, and goes on", async (t) => {
  const broker = await brokerPool(t)();
  const { server, send, answered, exited, seen } = await rawSession(t, broker.url);
  server.stdin!.write("{not json\n");
  server.stdin!.write("[]\n");
  await waitFor(() => (seen().match(/"id":null/g) ?? []).length === 2, 10_000, "two error answers");
  const errors = seen().split("\n").filter((line) => line.includes('"id":null')).map((line) => JSON.parse(line).error.code);
  assert.deepEqual(errors, [-32700, -32600]);
  send({ id: 2, method: "tools/call", params: { name: "agents", arguments: {} } });
  await answered(2);
  server.stdin!.end();
  assert.equal((await exited).code, 0);
});
