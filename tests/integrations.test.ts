import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { parse } from "yaml";
import { hermesSkill, openclawSkill } from "../src/integrate/skills.ts";

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), "utf8");

function frontmatter(text: string): string {
  const match = /^---\n([\s\S]*?)\n---\n/.exec(text);
  assert.ok(match, "SKILL.md starts with a --- frontmatter block");
  return match[1];
}

test("integrations/*/SKILL.md are the skills interop integrate writes", () => {
  assert.equal(read("integrations/hermes/SKILL.md"), hermesSkill({ agent: "hermes", peer: "openclaw" }));
  assert.equal(read("integrations/openclaw/SKILL.md"), openclawSkill({ agent: "openclaw", peer: "hermes" }));
});

test("the Hermes skill has valid YAML frontmatter with name, description, version and metadata.hermes.tags", () => {
  const meta = parse(frontmatter(read("integrations/hermes/SKILL.md")));
  assert.equal(meta.name, "interop");
  assert.ok(typeof meta.description === "string" && meta.description.length > 40);
  assert.equal(meta.version, "1.0.0");
  assert.deepEqual(meta.metadata.hermes.tags, ["agents", "messaging", "interop"]);
});

test("the OpenClaw skill uses single-line frontmatter keys only, with metadata.openclaw.requires.bins", () => {
  const lines = frontmatter(read("integrations/openclaw/SKILL.md")).split("\n");
  const fields = new Map<string, string>();
  for (const line of lines) {
    const match = /^([a-z][a-z_-]*): (\S.*)$/.exec(line);
    assert.ok(match, `not a single-line key: ${JSON.stringify(line)}`);
    fields.set(match[1], match[2]);
  }
  assert.equal(fields.get("name"), "interop");
  assert.ok((fields.get("description") ?? "").length > 40);
  assert.deepEqual(JSON.parse(fields.get("metadata")!).openclaw.requires.bins, ["interop"]);
});

test("every relative link in the project's Markdown names a file that exists", () => {
  const root = new URL("../", import.meta.url);
  const folders = ["docs", "integrations/hermes", "integrations/openclaw", "bench"];
  const inFolders = folders.flatMap((folder) =>
    readdirSync(new URL(folder, root)).filter((name) => name.endsWith(".md")).map((name) => `${folder}/${name}`)
  );
  const documents = ["README.md", "SECURITY.md", ...inFolders];
  const broken: string[] = [];
  for (const document of documents) {
    for (const [, target] of read(document).matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
      if (/^[a-z]+:/.test(target)) continue;
      if (!existsSync(new URL(target, new URL(document, root)))) broken.push(`${document}: ${target}`);
    }
  }
  assert.deepEqual(broken, []);
});
