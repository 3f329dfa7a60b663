/** Debian's Chromium (never a downloaded browser), driven by playwright-core, and the attacker's pages it visits. */
import { createServer } from "node:http";
import { type Browser, chromium } from "playwright-core";

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
}

export interface AttackerSite {
  /** `http://localhost:PORT/`: another site than the broker's `http://127.0.0.1:PORT` in the browser's eyes. */
  url: string;
  close(): Promise<void>;
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
  };
}
