/** Tokens for tests, made and revoked with the real CLI, as an operator does. */
import assert from "node:assert/strict";
import { type RunningBroker, startBroker, waitFor } from "./broker.ts";
import { runCli, tempDir } from "./cli.ts";

/** `--data-dir DIR`, or `--database-url URL` for a PostgreSQL URL: where `interop token` works. */
const place = (where: string) => /^postgres(ql)?:\/\//.test(where) ? ["--database-url", where] : ["--data-dir", where];

/** Creates a token for `agent` in a data dir or a database (an operator's with `admin`) and returns it. */
export async function createToken(where: string, agent: string, options: { admin?: boolean } = {}): Promise<string> {
  const result = await runCli(["token", "create", "--agent", agent, ...(options.admin ? ["--admin"] : []), ...place(where)]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^itk_[A-Za-z0-9_-]{43}\n$/);
  return result.stdout.trim();
}

/** Revokes every token of `agent` with `interop token revoke`; resolves with what it printed. */
export async function revokeTokens(where: string, agent: string): Promise<{ stdout: string; stderr: string }> {
  const result = await runCli(["token", "revoke", "--agent", agent, ...place(where)]);
  assert.equal(result.code, 0, result.stderr);
  return result;
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/**
 * A broker on a fresh data dir whose tokens (hermes, openclaw, an admin) were made before it started, stopped and
 * removed after the test; `revokeHermes` revokes hermes's token and waits until the broker refuses it.
 */
export async function brokerWithTokens(t: { after(fn: () => unknown): void }) {
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  t.after(async () => {
    await broker?.cleanup();
    dir.cleanup();
  });
  const tokens = {
    hermes: await createToken(dir.path, "hermes"),
    openclaw: await createToken(dir.path, "openclaw"),
    admin: await createToken(dir.path, "admin", { admin: true }),
  };
  broker = await startBroker({ dataDir: dir.path });
  const revokeHermes = async () => {
    await revokeTokens(dir.path, "hermes");
    // On /status, which takes nothing: a poll before the broker read the revocation would take the inbox.
    await waitFor(async () => (await fetch(`${broker!.url}/status`, { headers: bearer(tokens.hermes) })).status === 401, 5000, "the revocation");
  };
  return { broker, dir, tokens, revokeHermes };
}
