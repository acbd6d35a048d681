// docs/tools.md's browser example, run as written in Chromium (only the token
// endpoint's address and the question are replaced: the scripted model calls the tool).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { WEB_NO_METADATA, bundle, launch, needsServers, newPage, openScript, pkg } from "./browser.mjs";

const docs = readFileSync(path.resolve(pkg, "../../docs/tools.md"), "utf8");

let browser;
before(async () => {
  if (WEB_NO_METADATA) browser = await launch();
});
after(async () => browser?.close());

test("the client tool example of docs/tools.md works as written", needsServers, async () => {
  const start = docs.indexOf("```js\n") + 6;
  let snippet = docs.slice(start, docs.indexOf("```\n", start));
  const endpoint = 'const TOKEN_ENDPOINT = "http://127.0.0.1:8080/token"; // `make run` serves one';
  const question = 'bot.send("What time zone am I in?")';
  assert.ok(snippet.includes(endpoint) && snippet.includes(question), "the example changed");
  snippet = snippet
    .replace(endpoint, `const TOKEN_ENDPOINT = "${WEB_NO_METADATA}token";`)
    .replace(question, `bot.send('!{"tool": "get_time_zone"}')`);
  const page = await newPage(browser);
  await openScript(page, await bundle(snippet));
  await page.waitForFunction(() => document.querySelector("p")?.textContent.startsWith("Tool results:"));
  const reply = await page.$eval("p", (p) => p.textContent);
  assert.ok(JSON.parse(reply.replace("Tool results: ", "")).time_zone, reply);
  assert.deepEqual(page.errors, []);
});

test("the approval example of docs/tools.md works as written", needsServers, async () => {
  const first = docs.indexOf("```js\n") + 6;
  const start = docs.indexOf("```js\n", first) + 6;
  let snippet = docs.slice(start, docs.indexOf("```\n", start));
  const endpoint = 'const TOKEN_ENDPOINT = "http://127.0.0.1:8080/token"; // `make run` serves one';
  const question = 'bot.send("Publish a note saying hello")';
  assert.ok(snippet.includes(endpoint) && snippet.includes(question), "the example changed");
  snippet = snippet
    .replace(endpoint, `const TOKEN_ENDPOINT = "${WEB_NO_METADATA}token";`)
    .replace(question, `bot.send('!{"tool": "publish_note", "args": {"text": "hello"}, "then": "Published."}')`);
  const page = await newPage(browser);
  const asked = [];
  page.on("dialog", (dialog) => {
    asked.push(dialog.message());
    void dialog.accept();
  });
  await openScript(page, await bundle(snippet));
  await page.waitForFunction(() => document.querySelector("p")?.textContent === "Published.");
  assert.deepEqual(asked, ['Let the bot run publish_note({"text":"hello"})?']);
  assert.deepEqual(page.errors, []);
});
