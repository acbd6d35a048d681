// The chat page asks the user before a tool that needs approval runs (protocol v1.1),
// in real Chromium: Approve runs it, Deny tells the model no; and the question survives
// a page reload (the bot keeps the waiting turn in its store and asks the new page again).
// The worker asks before `publish_note` (BOT_APPROVAL_TOOLS, tests/e2e/procs.py).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { WAIT, WEB, launch, needsServers, newPage, unique } from "./browser.mjs";

let browser;
before(async () => {
  if (WEB) browser = await launch();
});
after(async () => browser?.close());

const NOTE = '!{"say": "Let me publish it.", "tool": "publish_note", "args": {"text": "hello"}, "then": "Done."}';

async function ready(page) {
  await page.waitForSelector("body[data-ready=true]");
}

async function send(page, text) {
  await page.$eval("textarea[name=text]", (el, t) => { el.value = t; }, text);
  await page.click("#send");
}

const prompt = (page) => page.waitForSelector(".approval[data-call] button.approve:not([disabled])");
const texts = (page, sel) => page.$$eval(sel, (els) => els.map((e) => e.textContent));

async function hasBubble(page, text) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll(".bubble.bot")].some((e) => e.textContent.endsWith(t)),
    { timeout: WAIT },
    text,
  );
}

test("Approve runs the tool; Deny tells the model no", needsServers, async () => {
  const page = await newPage(browser);
  await page.goto(`${WEB}?room=${unique("approve")}&identity=amy&join=1`);
  await ready(page);
  await send(page, NOTE);
  await prompt(page);
  const [asked] = await texts(page, ".approval");
  assert.match(asked, /publish_note\(\{"text":"hello"\}\)/);
  await page.click(".approval button.approve");
  await page.waitForSelector('.approval[data-settled="ok"]');
  await hasBubble(page, "Done.");
  assert.ok((await texts(page, ".tool")).includes("↳ ok: published: hello"));

  await send(page, NOTE);
  await page.waitForFunction(() => document.querySelectorAll(".approval").length === 2);
  await page.click(".approval:last-of-type button.deny");
  await page.waitForSelector('.approval[data-settled="denied"]');
  await page.waitForFunction(() => document.querySelectorAll(".bubble.bot").length >= 4);
  assert.ok(!(await texts(page, ".tool")).some((t) => t.includes("ok: published") && t !== "↳ ok: published: hello"));
  assert.deepEqual(page.errors, []);
});

test("a question waiting for the user survives a page reload", needsServers, async () => {
  const page = await newPage(browser);
  await page.goto(`${WEB}?room=${unique("reload")}&identity=rob&join=1`);
  await ready(page);
  await send(page, NOTE);
  await prompt(page);
  await page.reload(); // the page and its connection are gone; the turn waits in the store
  await ready(page);
  await prompt(page); // asked again, by the same bot (or any other)
  const [asked] = await texts(page, ".approval");
  assert.match(asked, /publish_note\(\{"text":"hello"\}\)/);
  await page.click(".approval button.approve");
  await page.waitForSelector('.approval[data-settled="ok"]');
  await hasBubble(page, "Done.");
  // the reply so far was streamed to the page before the reload; the rest comes after
  const user = await texts(page, ".bubble.user");
  assert.deepEqual(user, [NOTE]); // from the history: the turn's message, once
  assert.deepEqual(page.errors, []);
});
