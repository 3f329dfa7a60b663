/** Debian's Chromium (never a downloaded browser), driven by playwright-core, and the attacker's pages it visits. */
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import process from "node:process";
import { type Browser, chromium } from "playwright-core";

/** Debian's Chromium; INTEROP_CHROMIUM points elsewhere (a missing file shows what a machine without it does). */
const CHROMIUM = process.env.INTEROP_CHROMIUM ?? "/usr/bin/chromium";

/** Launch it before anything else starts, so a machine without the browser fails at once, naming the package. */
export function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `No browser at ${CHROMIUM}: the browser tests drive Debian's chromium package; install it ` +
        "(apt-get install -y --no-install-recommends chromium), or run npm test as root, which does",
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
}

export interface AttackerSite {
  /** `http://localhost:PORT/`: another site than the broker's `http://127.0.0.1:PORT` in the browser's eyes. */
  url: string;
  close(): Promise<void>;
  /** `close`, so that `await using attacker = await serveAttackerPage(…)` stops it however the test ends. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Serves `html` as the page of another site. It is on loopback, as the broker is, so that Chromium's Local
 * Network Access rules (a public page may not reach loopback without the user's permission) do not stop the
 * attack before it reaches the broker: what is tested is the broker's own defence.
 */
export async function serveAttackerPage(html: string): Promise<AttackerSite> {
  const server = createServer((_request, response) => response.writeHead(200, { "content-type": "text/html" }).end(html));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://localhost:${port}/`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
    [Symbol.asyncDispose]: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
