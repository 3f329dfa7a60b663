/**
 * Publish→receive latency through each way an agent can get its messages: the SSE stream, an ntfy JSON stream,
 * a push from `listen --post`, and the MCP `wait` tool. One message at a time, so it is latency, not queueing.
 *
 *   npm run roundtrip                    # the built dist/interop
 *   npm run roundtrip -- --runtime deno  # the source on Deno 2
 */
// @ts-types="../node_modules/@modelcontextprotocol/sdk/dist/esm/client/index.d.ts"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="../node_modules/@modelcontextprotocol/sdk/dist/esm/client/stdio.d.ts"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { interopCommand, startBrokerProcess } from "./processes.ts";

const { values } = parseArgs({ options: { runtime: { type: "string", default: "binary" }, messages: { type: "string", default: "200" } } });
const cli = interopCommand(values.runtime);
const count = Number(values.messages);
const dir = mkdtempSync(join(tmpdir(), "interop-roundtrip-"));
const { broker, url } = await startBrokerProcess(values.runtime, ["--data-dir", join(dir, "data"), "--rate-limit", "0"]);
const children: ChildProcess[] = [broker];

function start(args: string[]): ChildProcess {
  const child = spawn(cli[0], [...cli[1], ...args], { stdio: ["ignore", "ignore", "pipe"] });
  children.push(child);
  return child;
}

async function publish(to: string): Promise<number> {
  const sentAt = performance.now();
  await (await fetch(`${url}/broadcast?from=bench&to=${to}`, { method: "POST", body: JSON.stringify({ text: "ping" }) })).arrayBuffer();
  return sentAt;
}

/** Reads a streaming response, calling `onLine` for each line; resolves once the headers are in. */
async function readLines(path: string, onLine: (line: string) => void): Promise<AbortController> {
  const abort = new AbortController();
  const response = await fetch(`${url}${path}`, { signal: abort.signal });
  void (async () => {
    let buffer = "";
    for await (const chunk of response.body!.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      lines.forEach(onLine);
    }
  })().catch(() => {});
  return abort;
}

/** Measures `count` round trips: publish, then wait for `arrived` to be called. */
async function measure(to: string, subscribe: (arrived: () => void) => Promise<() => void>): Promise<number[]> {
  let wake = () => {};
  const stop = await subscribe(() => wake());
  const samples: number[] = [];
  for (let index = 0; index < count; index++) {
    const arrived = new Promise<void>((resolve) => (wake = resolve));
    const sentAt = await publish(to);
    await arrived;
    samples.push(performance.now() - sentAt);
  }
  stop();
  return samples;
}

const results: Record<string, number[]> = {};
results["SSE /subscribe"] = await measure("sse", async (arrived) => {
  const abort = await readLines("/subscribe?agent=sse", (line) => line.startsWith("data: ") && arrived());
  return () => abort.abort();
});
results["ntfy /json stream"] = await measure("ntfy", async (arrived) => {
  const abort = await readLines("/ntfy/ntfy/json", (line) => line.includes('"event":"message"') && arrived());
  return () => abort.abort();
});
results["push (listen --post)"] = await measure("push", async (arrived) => {
  const receiver = createServer((req, res) => req.resume().on("end", () => (res.writeHead(200).end(), arrived())));
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  start(["listen", "--agent", "push", "--url", url, "--state", join(dir, "push.json"), "--post", `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`]);
  // The first publish goes out once listen's stream is open.
  while (!(await (await fetch(`${url}/status`)).json()).subscribers.push) await new Promise((resolve) => setTimeout(resolve, 20));
  return () => receiver.close();
});

const mcp = new Client({ name: "roundtrip", version: "1" });
await mcp.connect(new StdioClientTransport({ command: cli[0], args: [...cli[1], "mcp", "--agent", "mcp", "--url", url] }));
const mcpSamples: number[] = [];
for (let index = 0; index < count; index++) {
  const waiting = mcp.callTool({ name: "wait", arguments: { timeout_seconds: 10 } });
  await new Promise((resolve) => setTimeout(resolve, 5)); // the wait reaches the broker first
  const sentAt = await publish("mcp");
  await waiting;
  mcpSamples.push(performance.now() - sentAt);
}
results["MCP wait tool"] = mcpSamples;
await mcp.close();

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
console.log(`interop round trips (${values.runtime}, ${count} messages each, publish → received, ${new Date().toISOString()})`);
console.log("path                  p50 ms   p90 ms   p99 ms");
for (const [path, samples] of Object.entries(results)) {
  const sorted = samples.sort((a, b) => a - b);
  console.log(`${path.padEnd(20)} ${[50, 90, 99].map((p) => percentile(sorted, p).toFixed(2).padStart(8)).join(" ")}`);
}
for (const child of children) if (child.exitCode === null) process.kill(child.pid!, "SIGTERM");
rmSync(dir, { recursive: true, force: true });
process.exit(0);
