/**
 * The seam's `BodyResponse.written`: told once the client has taken the answer, or once a client that takes none of
 * it is cut at the write deadline; on the bare socket and on `node:http` alike.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { test } from "node:test";
import { serveWithNode } from "../src/runtime/node_server.ts";
import type { Handler } from "../src/runtime/types.ts";
import { waitFor } from "./helpers/broker.ts";

/** Far more than the kernel buffers of a loopback connection take from an answer no one reads. */
const BIG = "x".repeat(16 * 1024 * 1024);
const WRITE_TIMEOUT_MS = 3_000;

async function serveBig(t: { after(fn: () => unknown): void }, writeTimeoutMs: number) {
  const written: string[] = [];
  const handler: Handler = (request) =>
    Promise.resolve({ status: 200, headers: {}, body: request.url.pathname === "/small" ? "small" : BIG, written: () => written.push(request.method) });
  const server = await serveWithNode({
    hostname: "127.0.0.1",
    port: 0,
    handler,
    maxRequestHeadBytes: 1024,
    requestTimeoutMs: 30_000,
    writeTimeoutMs,
    maxIncomingConnections: 64,
  });
  t.after(() => server.close());
  return { server, written };
}

// GET is answered on the bare socket, PUT by `node:http`.
for (const method of ["GET", "PUT"]) {
  test(`a client that reads none of a big answer is cut at the write deadline, and written() is told (${method})`, { timeout: 30_000 }, async (t) => {
    const { server, written } = await serveBig(t, WRITE_TIMEOUT_MS);
    const socket = connect(server.port, "127.0.0.1");
    t.after(() => socket.destroy());
    socket.on("error", () => {}).once("data", () => socket.pause());
    const sent = Date.now();
    socket.write(`${method} /big HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-length: 0\r\n\r\n`);
    // Seen on the broker's side: a client that reads nothing does not see its connection end either.
    await waitFor(() => written.length === 1, 20_000, "written() once the broker cut the client that reads nothing");
    assert.ok(Date.now() - sent >= WRITE_TIMEOUT_MS - 100, `cut after ${Date.now() - sent} ms, before the deadline`);
    assert.deepEqual(written, [method]);
  });

  test(`a client that reads its big answer slowly, past the write deadline, has it whole (${method})`, { timeout: 60_000 }, async (t) => {
    const writeTimeoutMs = 1_000;
    const { server, written } = await serveBig(t, writeTimeoutMs);
    const socket = connect(server.port, "127.0.0.1");
    t.after(() => socket.destroy());
    const sent = Date.now();
    let received = 0;
    const ended = new Promise<void>((resolve) => socket.on("error", () => {}).on("close", () => resolve()));
    // A slow link: a read every 10 ms, taking bytes all along. Cut at the deadline, its /poll's messages were lost.
    socket.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (received >= BIG.length) return void socket.end();
      socket.pause();
      setTimeout(() => socket.resume(), 10);
    });
    socket.write(`${method} /big HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-length: 0\r\n\r\n`);
    await ended;
    assert.ok(Date.now() - sent > writeTimeoutMs, `read in ${Date.now() - sent} ms: the test needs a slower reader`);
    assert.ok(received >= BIG.length, `cut after ${received} bytes, in ${Date.now() - sent} ms`);
    await waitFor(() => written.length === 1, 5_000, "written() once the answer was taken");
  });

  test(`an answer pipelined after a big one, written a piece at a time, comes whole after it (${method})`, { timeout: 60_000 }, async (t) => {
    const { server, written } = await serveBig(t, 60_000);
    const socket = connect(server.port, "127.0.0.1");
    t.after(() => socket.destroy());
    const chunks: Buffer[] = [];
    const ended = new Promise<void>((resolve) => socket.on("error", () => {}).on("close", () => resolve()));
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    const request = (path: string, close = "") => `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-length: 0\r\n${close}\r\n`;
    socket.write(request("/big") + request("/small") + request("/big", "connection: close\r\n"));
    await ended;
    const text = Buffer.concat(chunks).toString("latin1");
    const bodies = text.split(/HTTP\/1\.1 200 OK\r\n[^]*?\r\n\r\n/).slice(1);
    assert.deepEqual(bodies.map((body) => body.length), [BIG.length, 5, BIG.length]);
    assert.equal(bodies[1], "small");
    await waitFor(() => written.length === 3, 5_000, "written() for each answer");
  });

  test(`a client that reads its big answer has it whole, and written() is told once (${method})`, { timeout: 30_000 }, async (t) => {
    // A deadline no loaded test machine meets while reading 16 MiB.
    const { server, written } = await serveBig(t, 60_000);
    const response = await fetch(`http://127.0.0.1:${server.port}/big`, { method, body: method === "PUT" ? "" : undefined });
    assert.equal((await response.text()).length, BIG.length);
    await waitFor(() => written.length === 1, 5_000, "written() once the answer was taken");
    assert.deepEqual(written, [method]);
  });
}
