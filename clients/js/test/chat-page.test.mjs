// (a) The chat page `bot up` serves, in real Chromium: a streamed turn with a tool call
// and a 40,000-character reply (chunked on the wire), cancel, and errors shown.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { WAIT, WEB, launch, needsServers, newPage, unique } from "./browser.mjs";

let browser;
before(async () => {
  if (WEB) browser = await launch();
});
after(async () => browser?.close());

function longText(n) {
  // bot/testing/script.py long_text
  return "0123456789abcdefghijklmnopqrstuvwxyz\u00e9\u4e2d ".repeat(Math.floor(n / 39) + 1).slice(0, n);
}

async function openChat(room, identity) {
  const page = await newPage(browser);
  await page.goto(`${WEB}?room=${room}&identity=${identity}&join=1`);
  await page.waitForSelector("body[data-ready=true]");
  return page;
}

async function send(page, text) {
  await page.$eval("textarea[name=text]", (el, t) => { el.value = t; }, text);
  await page.click("#send");
}

const botBubbles = (page) => page.$$eval(".bubble.bot", (els) => els.map((e) => e.textContent));

test("a streamed turn with a tool call and a 40,000-character reply", needsServers, async () => {
  const page = await openChat(unique("page"), "ann");
  await send(page, '!{"tool": "calculate", "args": {"expression": "17*3"}, "long": 40000}');
  await page.waitForFunction(
    () => document.querySelector(".bubble.bot[data-turn]:not(.streaming)") !== null,
    { timeout: WAIT },
  );
  const tools = await page.$$eval(".tool", (els) => els.map((e) => e.textContent));
  assert.equal(tools[0], '⚙ calculate({"expression":"17*3"})');
  assert.match(tools[1], /^↳ ok: .*51/);
  const [reply] = await botBubbles(page);
  assert.equal(reply.length, 40000);
  assert.equal(reply, longText(40000));
  assert.deepEqual(page.errors, []);
});

test("cancel stops a running turn; refusals and failures are shown", needsServers, async () => {
  const page = await openChat(unique("page"), "bob");
  await send(page, '!{"stall": true}');
  await page.waitForSelector(".bubble.bot.streaming");
  await page.waitForSelector("#cancel:not([disabled])");
  await page.click("#cancel");
  await page.waitForFunction(() => [...document.querySelectorAll(".note")].some((e) => e.textContent === "cancelled"));
  await send(page, "x".repeat(9000)); // longer than max_text_chars: refused
  await page.waitForSelector(".bubble.error");
  const error = await page.$eval(".bubble.error", (e) => e.textContent);
  assert.match(error, /8000|too long|characters/i);
  await send(page, '!{"status": 500}'); // the LLM fails: the turn ends failed
  await page.waitForFunction(() => document.querySelectorAll(".bubble.error").length === 2);
  await send(page, "still here?"); // and the conversation goes on
  await page.waitForFunction(() =>
    [...document.querySelectorAll(".bubble.bot")].some((e) => e.textContent === "You said: still here?"),
  );
});

test("a tool the page runs itself shapes the reply", needsServers, async () => {
  const page = await openChat(unique("page"), "cid");
  await send(page, '!{"tool": "get_page_info"}');
  await page.waitForFunction(
    () => document.querySelector(".bubble.bot[data-turn]:not(.streaming)") !== null,
    { timeout: WAIT },
  );
  const tools = await page.$$eval(".tool", (els) => els.map((e) => e.textContent));
  assert.equal(tools[0], "⚙ get_page_info({})");
  assert.match(tools[1], /^↳ ok: .*lkbot chat/);
  const [reply] = await botBubbles(page);
  const info = JSON.parse(reply.replace(/^Tool results: /, ""));
  assert.equal(info.title, "lkbot chat"); // what the page returned, in the model's reply
  assert.equal(new URL(info.url).pathname, "/");
  assert.deepEqual(page.errors, []);
});
