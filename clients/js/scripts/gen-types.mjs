// Generates src/generated/{bot,client}.ts from docs/protocol.schema.json (the schema
// the Python models print with `python -m bot schema`), so the types cannot drift.
// Usage: node scripts/gen-types.mjs [--check]   (--check: fail if the files are stale)
import { compile } from "json-schema-to-typescript";
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const schemaPath = path.resolve(here, "../../../docs/protocol.schema.json");
const outDir = path.resolve(here, "../src/generated");
const check = process.argv.includes("--check");

const schema = JSON.parse(await readFile(schemaPath, "utf8"));
const parts = { bot: ["bot_to_client", "BotMessage"], client: ["client_to_bot", "ClientMessage"] };
// Property titles ("Id", "Seq"...) would each become an exported alias (Id1, Id2...):
// inline them; titles of definitions stay, they name the interfaces.
function untitled(node, isDef = true) {
  if (Array.isArray(node)) return node.map((n) => untitled(n, false));
  if (node === null || typeof node !== "object") return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === "title" && !isDef) continue;
    if (k === "$defs") {
      out[k] = Object.fromEntries(Object.entries(v).map(([n, d]) => [n, untitled(d, true)]));
    } else if (k === "properties") {
      out[k] = Object.fromEntries(Object.entries(v).map(([n, d]) => [n, untitled(d, false)]));
    } else {
      out[k] = untitled(v, false);
    }
  }
  return out;
}
await mkdir(outDir, { recursive: true });
let stale = false;
for (const [file, [key, name]] of Object.entries(parts)) {
  const sub = untitled({ ...schema[key], title: name });
  delete sub.discriminator; // not JSON Schema; the `type` consts already discriminate
  const ts = await compile(sub, name, {
    bannerComment: `/* Generated from docs/protocol.schema.json (${key}) by scripts/gen-types.mjs. Do not edit. */`,
    additionalProperties: false,
    unreachableDefinitions: true,
    format: true,
  });
  const target = path.join(outDir, `${file}.ts`);
  if (check) {
    const old = await readFile(target, "utf8").catch(() => "");
    if (old !== ts) {
      console.error(`stale: ${target}`);
      stale = true;
    }
  } else {
    await writeFile(target, ts);
  }
}
if (stale) process.exit(1);
