// Chunk framing of @lkbot/client (dist/, built by `npm run build`): random texts,
// astral characters included, split and reassembled; every frame within max_packet.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Reassembler, split } from "../dist/index.js";

const ALPHABET = ["a", "é", "中", "😀", '"', "\\", "\n", "\u2028", " "];
function randomText(rand, n) {
  let s = "";
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(rand() * ALPHABET.length)];
  return s;
}
function rng(seed) {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

test("split then reassemble gives back the text; frames fit", () => {
  const rand = rng(42);
  for (let i = 0; i < 300; i++) {
    const maxPacket = 300 + Math.floor(rand() * 3000);
    const text = JSON.stringify({ v: 1, type: "chat.message", id: `m${i}`, text: randomText(rand, Math.floor(rand() * 5000)) });
    const frames = split(text, `m${i}`, maxPacket);
    const r = new Reassembler();
    let whole = null;
    const order = frames.map((f, k) => k).sort(() => rand() - 0.5); // any arrival order
    for (const k of order) {
      assert.ok(new TextEncoder().encode(frames[k]).length <= maxPacket);
      const out = r.feed(JSON.parse(frames[k]));
      if (out !== null) whole = out;
    }
    assert.equal(whole, text);
    assert.deepEqual(JSON.parse(whole), JSON.parse(text));
  }
});

test("a frame of another total or a repeated frame is ignored", () => {
  const frames = split("x".repeat(1000), "a", 300).map((f) => JSON.parse(f));
  const r = new Reassembler();
  assert.equal(r.feed(frames[0]), null);
  assert.equal(r.feed(frames[0]), null);
  assert.equal(r.feed({ ...frames[1], total: 99 }), null);
  let out = null;
  for (const f of frames.slice(1)) out = r.feed(f) ?? out;
  assert.equal(out, "x".repeat(1000));
});

test("a too small max_packet is refused", () => {
  assert.throws(() => split("abc", "a", 100), RangeError);
});
