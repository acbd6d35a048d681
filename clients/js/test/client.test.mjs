// @lkbot/client in real Chromium, with tokens like LiveKit's starter apps issue (no
// canUpdateOwnMetadata, so the client cannot announce itself with an attribute): the
// handshake, streamed turns as async iterators, chunking both ways, cancel, history,
// refusals, privacy between two users, and first-text latency (reported, not asserted).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { WEB_NO_METADATA, bundle, launch, needsServers, newPage, openScript, unique } from "./browser.mjs";

let browser;
let js;
before(async () => {
  if (!WEB_NO_METADATA) return;
  browser = await launch();
  js = await bundle(`
    import { LkbotClient, fetchToken } from "@lkbot/client";
    window.lkbot = { LkbotClient, fetchToken };
    window.join = async (endpoint, room, identity) => {
      const { serverUrl, participantToken } = await fetchToken(endpoint, { room, identity });
      window.bot = await LkbotClient.connect(serverUrl, participantToken);
      return { tools: window.bot.ready.tools.map((t) => t.name), limits: window.bot.ready.limits };
    };
    window.chat = async (text, options) => {
      const events = [];
      const turn = window.bot.send(text, options);
      for await (const event of turn) events.push(event);
      const result = await turn.result;
      return { events, reply: result.reply, end: result.end, refused: result.refused };
    };
  `);
});
after(async () => browser?.close());

async function user(room, identity) {
  const page = await newPage(browser);
  await openScript(page, js);
  await page.waitForFunction(() => typeof window.join === "function");
  const endpoint = `${WEB_NO_METADATA}token`; // another origin: allowed by BOT_WEB_CORS_ORIGIN
  const ready = await page.evaluate((e, r, i) => window.join(e, r, i), endpoint, room, identity);
  return { page, ready };
}

test("a turn without attribute permission: handshake, stream, tools, history", needsServers, async () => {
  const { page, ready } = await user(unique("client"), "ann");
  assert.ok(ready.tools.includes("calculate"));
  assert.equal(ready.limits.max_packet, 15000);
  const announced = await page.evaluate(() => window.bot.room.localParticipant.attributes["lkbot.client"]);
  assert.equal(announced, undefined); // refused by the server, and the client went on
  const r = await page.evaluate(() =>
    window.chat('!{"tool": "calculate", "args": {"expression": "6*7"}, "then": "It is 42."}'),
  );
  const types = r.events.map((e) => e.type);
  const order = ["start", "toolCall", "toolResult", "delta", "reply", "end"].map((t) => types.indexOf(t));
  assert.ok(order.every((at, i) => at >= 0 && (i === 0 || at > order[i - 1])), types.join(","));
  assert.equal(types.at(-1), "end");
  assert.equal(r.reply, "It is 42.");
  assert.equal(r.end.status, "completed");
  const page1 = await page.evaluate(() => window.bot.history());
  assert.deepEqual(page1.items.map((i) => i.role), ["user", "assistant"]);
  assert.deepEqual(page.errors, []);
});

test("chunked both ways, cancel, and refusals as results", needsServers, async () => {
  const { page } = await user(unique("client"), "bob");
  const big = "中".repeat(7000); // 21,000 bytes of UTF-8: sent as chunk frames
  const r = await page.evaluate((t) => window.chat(t), big);
  assert.equal(r.reply, `You said: ${big}`); // and the reply came back chunked
  const cancelled = await page.evaluate(async () => {
    const turn = window.bot.send('!{"stall": true}');
    for await (const event of turn) if (event.type === "delta") break;
    await turn.cancel();
    return (await turn.result).end.status;
  });
  assert.equal(cancelled, "cancelled");
  const refused = await page.evaluate(() => window.chat("x".repeat(9000)));
  assert.equal(refused.end, null);
  assert.equal(refused.refused.code, "payload_too_large"); // over max_text_chars
  const failed = await page.evaluate(() => window.chat('!{"status": 500}'));
  assert.equal(failed.end.status, "failed");
  assert.equal(failed.end.error.code, "llm_unavailable");
});

test("two users in one room see only their own turns", needsServers, async () => {
  const room = unique("client");
  const ann = await user(room, "ann");
  const bob = await user(room, "bob");
  const [a, b] = await Promise.all([
    ann.page.evaluate(() => window.chat("from ann")),
    bob.page.evaluate(() => window.chat("from bob")),
  ]);
  assert.equal(a.reply, "You said: from ann");
  assert.equal(b.reply, "You said: from bob");
  await ann.page.evaluate(() => window.chat("ann again"));
  const seenByAnn = await ann.page.evaluate(() => JSON.stringify(window.bot.messages));
  const seenByBob = await bob.page.evaluate(() => JSON.stringify(window.bot.messages));
  assert.ok(!seenByAnn.includes("from bob"));
  assert.ok(!seenByBob.includes("from ann") && !seenByBob.includes("ann again"));
});

test("first text in the browser, 20 turns (reported)", needsServers, async (t) => {
  const { page } = await user(unique("client"), "carol");
  const times = await page.evaluate(async () => {
    const out = [];
    for (let i = 0; i < 20; i++) {
      const start = performance.now();
      const turn = window.bot.send(`turn ${i}`);
      for await (const event of turn) {
        if (event.type === "delta") {
          out.push(performance.now() - start);
          break;
        }
      }
      await turn.result;
    }
    return out;
  });
  assert.equal(times.length, 20);
  const sorted = [...times].sort((x, y) => x - y);
  const p = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(1);
  t.diagnostic(`browser first text over 20 turns: p50 ${p(0.5)} ms, p90 ${p(0.9)} ms, max ${p(1)} ms`);
  console.log(`browser first text over 20 turns: p50 ${p(0.5)} ms, p90 ${p(0.9)} ms, max ${p(1)} ms`);
});
