/**
 * `interop mcp` killed (SIGKILL) while a wait's message is between the broker and the agent: the message is taken
 * only once its answer is in the pipe to the MCP client, so a kill at any instant loses none (a kill after the
 * write and before the take shows it again once its lease expires: the at-least-once side).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { closeSync, constants, openSync, readSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { startBroker, waitFor } from "../helpers/broker.ts";
import { cliCommand, runCli, tempDir } from "../helpers/cli.ts";
import { makeFifo } from "../helpers/fifo.ts";

/**
 * A relay to `target` that forwards every request and answer, except the answer to a take of what a lease showed
 * (`/poll?…&up_to=` or `take=`): that one it holds for good, once the broker has taken. `waitAsked` resolves once
 * a long poll reached it, `waitAnswered` once a leased wait's answer showing a message went through.
 */
async function takeHoldingRelay(t: TestContext, target: string) {
  const takeHeld = Promise.withResolvers<void>();
  const waitAsked = Promise.withResolvers<void>();
  const waitAnswered = Promise.withResolvers<void>();
  const relay = createServer(async (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? "/", target);
    if (url.pathname === "/wait") waitAsked.resolve();
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const headers = Object.fromEntries(Object.entries(request.headers).filter(([name, value]) => typeof value === "string" && name !== "host" && name !== "connection")) as Record<string, string>;
    const answer = await fetch(url, { method: request.method, headers, body: chunks.length > 0 ? Buffer.concat(chunks) : undefined });
    const body = Buffer.from(await answer.arrayBuffer());
    if (url.pathname === "/poll" && (url.searchParams.has("up_to") || url.searchParams.has("take"))) return takeHeld.resolve();
    if (url.pathname === "/wait" && answer.status === 200) waitAnswered.resolve();
    response.writeHead(answer.status, { "content-type": answer.headers.get("content-type") ?? "application/json", ...Object.fromEntries([...answer.headers].filter(([name]) => name.startsWith("interop-"))) });
    response.end(body);
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    relay.closeAllConnections();
    await new Promise((resolve) => relay.close(resolve));
  });
  return {
    url: `http://127.0.0.1:${(relay.address() as AddressInfo).port}`,
    takeHeld: takeHeld.promise,
    waitAsked: waitAsked.promise,
    waitAnswered: waitAnswered.promise,
  };
}

/**
 * `interop mcp -a openclaw` through `url`, its stdout a FIFO this test reads only when it says (`read`), so that the
 * pipe can be left full; initialized. Killed after the test if still running.
 */
async function mcpOnFifo(t: TestContext, url: string) {
  const dir = tempDir("interop-mcp-killed-");
  const fifo = join(dir.path, "stdout");
  makeFifo(fifo);
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(fifo, constants.O_WRONLY);
  const [command, prefix] = cliCommand();
  const server = spawn(command, [...prefix, "mcp", "--agent", "openclaw", "--url", url], { stdio: ["pipe", writer, "ignore"] });
  closeSync(writer);
  const exited = new Promise((resolve) => server.once("close", resolve));
  t.after(async () => {
    if (server.exitCode === null && server.signalCode === null) server.kill("SIGKILL");
    await exited;
    closeSync(reader);
    dir.cleanup();
  });
  let stdout = "";
  const read = () => {
    const buffer = Buffer.alloc(1 << 16);
    for (;;) {
      try {
        const count = readSync(reader, buffer);
        if (count === 0) return stdout;
        stdout += buffer.subarray(0, count).toString();
      } catch {
        return stdout; // EAGAIN: nothing more for now.
      }
    }
  };
  const send = (message: object) => server.stdin!.write(JSON.stringify({ jsonrpc: "2.0", ...message }) + "\n");
  send({ id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "test", version: "1" } } });
  await waitFor(() => /"id":1[,}]/.test(read()), 20_000, "the answer to initialize");
  send({ method: "notifications/initialized" });
  const kill = async () => {
    server.kill("SIGKILL");
    await exited;
    return read();
  };
  return { send, kill };
}

/** `promise`, or a failure naming `what` after 30 s. */
function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 30_000)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** The wait's answer (request 2) in what the MCP client read, if any, as the message's text. */
function waitAnswer(stdout: string): string | undefined {
  const line = stdout.split("\n").find((line) => line.includes(`"id":2,`) || line.includes(`"id":2}`));
  return line === undefined ? undefined : JSON.parse(JSON.parse(line).result.content[0].text).message?.text;
}

/** What openclaw's inbox still holds, by text (a peek: taking nothing, under no lease). */
async function pending(url: string): Promise<string[]> {
  return (await (await fetch(`${url}/poll?agent=openclaw&peek=1`)).json()).map((message: { text: string }) => message.text);
}

test("interop mcp killed while its wait's take is at the broker: the agent got the message, taken once", async (t) => {
  // The take came before the answer was written: killed with the take's answer on its way, the message was taken
  // and never reached the agent (lost: not in the inbox, not parked).
  const broker = await startBroker();
  t.after(() => broker.cleanup());
  const relay = await takeHoldingRelay(t, broker.url);
  const mcp = await mcpOnFifo(t, relay.url);
  const sent = await runCli(["send", "--url", broker.url, "-f", "hermes", "-t", "openclaw", "deploy at noon"]);
  assert.equal(sent.code, 0, sent.stderr);
  mcp.send({ id: 2, method: "tools/call", params: { name: "wait", arguments: { timeout_seconds: 20 } } });
  await within(relay.takeHeld, "the take");
  const stdout = await mcp.kill();
  assert.equal(waitAnswer(stdout), "deploy at noon", "the agent got the message");
  assert.deepEqual(await pending(broker.url), [], "taken once");
});

test("interop mcp killed before its wait's answer reached the pipe: the message stays in the inbox", async (t) => {
  // The MCP client stops reading: the pipe fills with other answers, and the wait's answer stays in the process.
  // Taken before the write, the message died with it. (On Deno the write to a full pipe blocks the whole process,
  // so it never gets as far as a take.)
  const broker = await startBroker();
  t.after(() => broker.cleanup());
  const relay = await takeHoldingRelay(t, broker.url);
  const mcp = await mcpOnFifo(t, relay.url);
  mcp.send({ id: 2, method: "tools/call", params: { name: "wait", arguments: { timeout_seconds: 30 } } });
  await within(relay.waitAsked, "the wait's long poll");
  // Each answer is some kilobytes: far more than a pipe holds (64 KiB on Linux).
  for (let id = 100; id < 160; id++) mcp.send({ id, method: "tools/list" });
  const sent = await runCli(["send", "--url", broker.url, "-f", "hermes", "-t", "openclaw", "deploy at noon"]);
  assert.equal(sent.code, 0, sent.stderr);
  await within(relay.waitAnswered, "the wait's answer");
  // A take would follow the wait's answer at once (the broker's round trip): time for one, were it made.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const stdout = await mcp.kill();
  assert.equal(waitAnswer(stdout), undefined, "the answer never reached the client");
  assert.deepEqual(await pending(broker.url), ["deploy at noon"], "left in the inbox, for the agent's next session");
});
