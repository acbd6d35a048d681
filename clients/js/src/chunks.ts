/**
 * Chunk framing (docs/protocol.md, "Chunking"): a message whose JSON is larger than
 * `max_packet` bytes travels as `chunk` frames; `data` of frame n (1-based) is the
 * n-th slice of the whole message's JSON text.
 */
import type { Chunk } from "./generated/bot.js";
import type { ChunkFrame } from "./generated/client.js";

const MAX_ID = 64;
const encoder = new TextEncoder();

export function byteLength(text: string): number {
  return encoder.encode(text).length;
}

function frameId(of: string, n: number): string {
  const suffix = `.${n}`;
  return of.slice(0, MAX_ID - suffix.length) + suffix;
}

function frameJson(of: string, n: number, total: number, data: string): string {
  const frame: ChunkFrame = { v: 1, type: "chunk", id: frameId(of, n), of, n, total, data };
  return JSON.stringify(frame);
}

/** The frames (JSON texts) for `text`, each at most `maxPacket` UTF-8 bytes. */
export function split(text: string, of: string, maxPacket: number): string[] {
  const overhead = byteLength(frameJson(of, 10 ** 6, 10 ** 6, ""));
  const budget = maxPacket - overhead;
  if (budget < 64) throw new RangeError(`max_packet ${maxPacket} leaves no room for data`);
  const size = (s: string) => byteLength(JSON.stringify(s)) - 2;
  const pieces: string[] = [];
  let pos = 0;
  while (pos < text.length) {
    let end = Math.min(text.length, pos + budget);
    if (size(text.slice(pos, end)) > budget) {
      let lo = pos + 1;
      let hi = end;
      while (lo < hi) {
        const mid = Math.floor((lo + hi + 1) / 2);
        if (size(text.slice(pos, mid)) <= budget) lo = mid;
        else hi = mid - 1;
      }
      end = lo;
    }
    // never cut a surrogate pair in two
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff && end - 1 > pos) end -= 1;
    pieces.push(text.slice(pos, end));
    pos = end;
  }
  return pieces.map((p, i) => frameJson(of, i + 1, pieces.length, p));
}

interface Assembly {
  total: number;
  started: number;
  parts: Map<number, string>;
  size: number;
}

/** Collects the bot's frames; bounded in size, count and age. */
export class Reassembler {
  private pending = new Map<string, Assembly>();

  constructor(
    private readonly maxBytes = 64 * 2 ** 20,
    private readonly maxPending = 64,
    private readonly ttlMs = 60_000,
  ) {}

  /** Adds a frame; returns the whole message's text once every frame is in. */
  feed(frame: Chunk): string | null {
    const now = Date.now();
    for (const [of, a] of this.pending) {
      if (now - a.started > this.ttlMs) this.pending.delete(of);
    }
    let a = this.pending.get(frame.of);
    if (!a) {
      if (this.pending.size >= this.maxPending) {
        const oldest = this.pending.keys().next().value;
        if (oldest !== undefined) this.pending.delete(oldest);
      }
      a = { total: frame.total, started: now, parts: new Map(), size: 0 };
      this.pending.set(frame.of, a);
    }
    if (frame.total !== a.total || frame.n < 1 || frame.n > a.total || a.parts.has(frame.n)) {
      return null;
    }
    a.parts.set(frame.n, frame.data);
    a.size += frame.data.length;
    if (a.size > this.maxBytes) {
      this.pending.delete(frame.of);
      return null;
    }
    if (a.parts.size < a.total) return null;
    this.pending.delete(frame.of);
    let whole = "";
    for (let n = 1; n <= a.total; n++) whole += a.parts.get(n);
    return whole;
  }
}
