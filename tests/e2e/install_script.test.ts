/** install.sh on a checkout that was never built: what it says when npm cannot fetch the toolchain. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { tempDir } from "../helpers/cli.ts";

const INSTALL = fileURLToPath(new URL("../../install.sh", import.meta.url));

test("install.sh says the toolchain needs the npm registry when npm ci fails (offline), and exits 1 without installing", (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const checkout = join(dir.path, "interop");
  const bin = join(dir.path, "bin");
  mkdirSync(checkout);
  mkdirSync(bin);
  copyFileSync(INSTALL, join(checkout, "install.sh"));
  // An npm that fails as it does offline with an empty cache.
  writeFileSync(join(bin, "npm"), "#!/bin/sh\necho 'npm error code ENOTCACHED' >&2\nexit 1\n");
  chmodSync(join(bin, "npm"), 0o755);
  const result = spawnSync("bash", [join(checkout, "install.sh"), "--prefix", join(dir.path, "prefix")], {
    encoding: "utf8",
    env: { PATH: `${bin}:/usr/bin:/bin`, HOME: dir.path },
  });
  assert.equal(result.status, 1, result.stderr);
  const lines = result.stderr.trim().split("\n");
  assert.equal(lines.at(-2), "npm error code ENOTCACHED");
  assert.match(lines.at(-1)!, /^error: npm ci could not install the toolchain \(npm's error is above\): it downloads from the npm registry, so it needs the network .*; then run \.\/install\.sh again$/);
  assert.equal(result.stdout, "");
});
