/** The benchmark's HTTP client (bench/load/connection.ts) reads answers however the socket splits them. */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createServer, type Socket } from "node:net";
import { test } from "node:test";
import { Connection } from "../bench/load/connection.ts";

/**
 * Three kinds of answer, in turn, each written in pieces. The first answer's head is longer than a read (64 KiB),
 * so its status line must outlive the next fill of the read buffer the client reuses; the chunked body spans reads
 * too; the counted body is as large as `/status` with 1,000 agents.
 */
function answer(index: number): Buffer[] {
  let whole: Buffer;
  if (index % 3 === 0) {
    whole = Buffer.from(`HTTP/1.1 404 Not Found\r\nx-filler: ${"x".repeat(70_000)}\r\ncontent-length: 2\r\n\r\n{}`, "latin1");
  } else if (index % 3 === 1) {
    whole = Buffer.concat([Buffer.from("HTTP/1.1 200 OK\r\ncontent-length: 190000\r\n\r\n", "latin1"), Buffer.alloc(190_000, "a")]);
  } else {
    const chunk = "b".repeat(100_000);
    whole = Buffer.from(`HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`, "latin1");
  }
  return [whole.subarray(0, 30), whole.subarray(30, whole.length - 3), whole.subarray(whole.length - 3)];
}

test("Connection answers pipelined requests in order whether bodies are counted or chunked and however reads split them", async (t) => {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    let requests = "";
    let answered = 0;
    let writing = Promise.resolve();
    socket.on("data", (chunk: Buffer) => {
      requests += chunk.toString("latin1");
      for (let end; (end = requests.indexOf("\r\n\r\n")) >= 0;) {
        requests = requests.slice(end + 4);
        const pieces = answer(answered++);
        writing = writing.then(async () => {
          for (const piece of pieces) await new Promise((resolve) => socket.write(piece, resolve));
        });
      }
    });
  });
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const connection = new Connection(`http://127.0.0.1:${port}`);
  t.after(() => connection.close());

  const statuses = await Promise.all(Array.from({ length: 30 }, () => connection.request("GET", "/status")));
  assert.deepEqual(statuses, Array.from({ length: 30 }, (_, i) => [404, 200, 201][i % 3]));
  // Nothing of those answers is left over to be taken for the next one's.
  assert.equal(await connection.request("GET", "/status"), 404);
});
