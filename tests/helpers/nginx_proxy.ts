/** A real nginx reverse proxy in front of a test broker (Debian's nginx), stopped by PID. */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { freePort } from "../../bench/processes.ts";
import { waitFor } from "./broker.ts";

export interface NginxProxy {
  url: string;
  stop(): Promise<void>;
}

const NGINX = "/usr/sbin/nginx";

/** Starts nginx proxying everything to `upstream` with the given `proxy_read_timeout` (e.g. "1s"). */
export async function startNginxProxy(upstream: string, readTimeout: string): Promise<NginxProxy> {
  if (!existsSync(NGINX)) throw new Error(`nginx is not installed (${NGINX}): apt-get install nginx (bash .ci/run does)`);
  const dir = mkdtempSync(join(tmpdir(), "interop-test-nginx-"));
  const port = await freePort();
  writeFileSync(join(dir, "nginx.conf"), `
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  server {
    listen 127.0.0.1:${port};
    location / { proxy_pass ${upstream}; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_read_timeout ${readTimeout}; }
  }
}
`);
  const child = spawn(NGINX, ["-e", join(dir, "error.log"), "-c", join(dir, "nginx.conf")], { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, "SIGQUIT");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitFor(() => fetch(`${url}/status`).then((response) => response.ok, () => false), 10_000, "nginx to answer");
    return { url, stop };
  } catch (error) {
    // Read before the stop, which removes the dir with the log.
    const log = existsSync(join(dir, "error.log")) ? readFileSync(join(dir, "error.log"), "utf8") : "(no error.log)";
    await stop();
    throw new Error(`${(error as Error).message}: ${log}`);
  }
}
