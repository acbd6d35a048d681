// The README's browser snippet, run as written (only the token endpoint's address is
// replaced), and its React excerpt checked against web/react.tsx, which the React
// page test runs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { WEB_NO_METADATA, bundle, launch, needsServers, newPage, openScript, pkg } from "./browser.mjs";

const root = path.resolve(pkg, "../..");
const readme = readFileSync(path.join(root, "README.md"), "utf8");

function block(heading, lang) {
  const section = readme.slice(readme.indexOf(heading));
  const start = section.indexOf("```" + lang + "\n") + lang.length + 4;
  return section.slice(start, section.indexOf("```\n", start));
}

let browser;
before(async () => {
  if (WEB_NO_METADATA) browser = await launch();
});
after(async () => browser?.close());

test("the README's browser snippet works as written", needsServers, async () => {
  const snippet = block("### Browser: the TypeScript client", "js");
  const line = 'const TOKEN_ENDPOINT = "http://127.0.0.1:8080/token"; // `make run` serves one';
  assert.ok(snippet.includes(line), "the snippet's token endpoint line changed");
  const js = await bundle(snippet.replace(line, `const TOKEN_ENDPOINT = "${WEB_NO_METADATA}token";`));
  const page = await newPage(browser);
  await openScript(page, js);
  await page.waitForFunction(() => document.querySelector("p")?.textContent === "You said: What is 17*3?");
  assert.deepEqual(page.errors, []);
});

test("the README's React excerpt is web/react.tsx's code", () => {
  const excerpt = block("### LiveKit's own chat UIs", "tsx");
  const source = readFileSync(path.join(root, "web/react.tsx"), "utf8").split("\n").map((l) => l.trim());
  const code = excerpt.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("//"));
  assert.ok(code.length > 15);
  for (const l of code) assert.ok(source.includes(l), `not in web/react.tsx: ${l}`);
});
