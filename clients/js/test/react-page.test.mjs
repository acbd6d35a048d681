// (b) and (c): a page built on LiveKit's stock React hooks (web/react.tsx: useSession,
// useAgent, useSessionMessages from @livekit/components-react 2.9, no lkbot code) with
// tokens like the agent starters' (no canUpdateOwnMetadata): the agent shows as ready,
// a message gets a streamed reply in one bubble, and two users see only their own.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { WAIT, WEB_NO_METADATA, launch, needsServers, newPage, unique } from "./browser.mjs";

let browser;
before(async () => {
  if (WEB_NO_METADATA) browser = await launch();
});
after(async () => browser?.close());

const WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor".split(" ");
const words = (n) => Array.from({ length: n }, (_, i) => WORDS[i % WORDS.length]).join(" ");

async function openReact(room, identity) {
  const page = await newPage(browser);
  await page.goto(`${WEB_NO_METADATA}react?room=${room}&identity=${identity}`);
  // useAgent: the bot's lk.agent.state is "listening" (else it fails after 20 s)
  await page.waitForSelector("#status[data-state=listening]");
  return page;
}

async function say(page, text) {
  await page.type("textarea[name=text]", text);
  await page.click("#send");
}

const bubbles = (page, who) => page.$$eval(`.bubble.${who}`, (els) => els.map((e) => e.textContent));
async function hasBot(page, text) {
  try {
    await page.waitForFunction(
      (t) => [...document.querySelectorAll(".bubble.bot")].some((e) => e.textContent === t),
      { timeout: WAIT },
      text,
    );
  } catch (e) {
    // what the page showed instead
    const shown = await page.$$eval(".bubble", (els) => els.map((x) => `${x.className}: ${x.textContent}`));
    const status = await page.$eval("#status", (x) => x.dataset.state).catch(() => "?");
    throw new Error(`no bot bubble ${JSON.stringify(text)}; status ${status}; bubbles ${JSON.stringify(shown)}; errors ${JSON.stringify(page.errors)}`, { cause: e });
  }
}

test("the stock hooks: agent ready, a streamed reply in one bubble", needsServers, async () => {
  const page = await openReact(unique("react"), "ann");
  await say(page, '!{"tokens": 40, "tps": 100}');
  await hasBot(page, words(40));
  assert.deepEqual(await bubbles(page, "user"), ['!{"tokens": 40, "tps": 100}']);
  assert.deepEqual(await bubbles(page, "bot"), [words(40)]);
  // the state went back to listening once the reply was written
  await page.waitForSelector("#status[data-state=listening]");
  await say(page, "and again");
  await hasBot(page, "You said: and again");
  assert.equal((await bubbles(page, "bot")).length, 2);
  assert.deepEqual(page.errors, []);
});

const READY = ["listening", "thinking", "speaking"];

// every state the page shows from now on (useAgent's, as the page renders it)
const watchStates = (page) =>
  page.evaluate(() => {
    window.__states = [];
    const status = document.querySelector("#status");
    new MutationObserver(() => window.__states.push(status.dataset.state)).observe(status, {
      attributes: true,
      attributeFilter: ["data-state"],
    });
  });

test("two users in one room see only their own replies", needsServers, async () => {
  const room = unique("react");
  const ann = await openReact(room, "ann");
  await watchStates(ann);
  const bob = await openReact(room, "bob");
  await say(ann, "from ann");
  await hasBot(ann, "You said: from ann");
  await say(bob, "from bob");
  await hasBot(bob, "You said: from bob");
  await say(ann, "ann again");
  await hasBot(ann, "You said: ann again");
  assert.deepEqual(await bubbles(ann, "bot"), ["You said: from ann", "You said: ann again"]);
  assert.deepEqual(await bubbles(bob, "bot"), ["You said: from bob"]);
  // what a user types goes to the whole room (the stock UI's sendText on lk.chat has no
  // destination); the bot's replies do not
  assert.deepEqual(await bubbles(ann, "other"), ["from bob"]);
  // bob joining never made ann's agent look not ready (her input stays enabled: the
  // bot re-announces its state for bob through another ready state)
  const shown = await ann.evaluate(() => window.__states);
  assert.ok(shown.length > 0 && shown.every((s) => READY.includes(s)), JSON.stringify(shown));
});
