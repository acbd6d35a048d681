// Client tools on a stand-in room (no server): a tool.call runs the registered handler
// once and is answered with tool.result; a replayed call gets the same result again;
// a handler that throws answers an error; the hello declares the tools.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { ParticipantKind, RoomEvent } from "livekit-client";
import { LkbotClient, PROTOCOL_ATTRIBUTE } from "../dist/index.js";

const bot = { identity: "bot", kind: ParticipantKind.AGENT, attributes: { [PROTOCOL_ATTRIBUTE]: "1" } };

class StandInRoom extends EventEmitter {
  constructor() {
    super();
    this.sent = [];
    this.seq = 0;
    this.remoteParticipants = new Map([[bot.identity, bot]]);
    this.localParticipant = {
      setAttributes: async () => undefined,
      publishData: async (bytes, options) => {
        if (options.topic !== "lkbot") return;
        const body = JSON.parse(new TextDecoder().decode(bytes));
        this.sent.push(body);
        if (body.type === "session.hello") setImmediate(() => this.ready(body));
        this.emit("sent", body);
      },
    };
  }
  deliver(msg) {
    const bytes = new TextEncoder().encode(JSON.stringify({ v: 1, ts: 1, ...msg }));
    this.emit(RoomEvent.DataReceived, bytes, bot, undefined, "lkbot");
  }
  ready(hello) {
    const limits = { max_packet: 15000, max_text_chars: 8000, max_message_bytes: 65536, max_queue: 8, rate_burst: 10, rate_per_second: 2, history_max_items: 50 };
    this.deliver({ type: "session.ready", id: `b${++this.seq}`, seq: this.seq, reply_to: hello.id, protocol: "1.0", features: [], tools: [], limits });
  }
  next(type) {
    return new Promise((resolve) => {
      const on = (body) => {
        if (body.type === type) {
          this.off("sent", on);
          resolve(body);
        }
      };
      this.on("sent", on);
    });
  }
  async disconnect() {}
}

test("a tool.call runs the handler once; a replay resends its result", async () => {
  const room = new StandInRoom();
  const client = new LkbotClient(room, { timeoutMs: 5_000 });
  const runs = [];
  client.tools.register("where", { description: "Where am I" }, (args) => {
    runs.push(args);
    return { city: "Oslo" };
  });
  await client.start();
  const hello = room.sent.find((b) => b.type === "session.hello");
  assert.deepEqual(hello.tools, [{ name: "where", description: "Where am I", parameters: { type: "object" } }]);

  const call = { type: "tool.call", id: "b9-x", seq: 9, reply_to: "m1", turn: "t_1", call_id: "c1", name: "where", arguments: { precise: true } };
  let result = room.next("tool.result");
  room.deliver(call);
  assert.deepEqual(await result, { v: 1, type: "tool.result", call_id: "c1", output: { city: "Oslo" }, id: (await result).id });
  result = room.next("tool.result");
  room.deliver(call); // replayed by a resume: the same id, already seen
  assert.deepEqual((await result).output, { city: "Oslo" });
  assert.deepEqual(runs, [{ precise: true }]);

  client.tools.register("broken", {}, () => {
    throw new Error("no GPS");
  });
  result = room.next("tool.result");
  room.deliver({ ...call, id: "b10-y", seq: 10, call_id: "c2", name: "broken" });
  assert.deepEqual((await result).error, { message: "no GPS" });
});

test("a refused tool.result is sent again after the wait it names", async () => {
  const room = new StandInRoom();
  room.on("sent", (body) => {
    if (body.type !== "tool.result") return;
    const refused = room.sent.filter((b) => b.type === "tool.result").length === 1;
    const answer = refused
      ? { type: "error", code: "rate_limited", message: "slow down", retryable: true, retry_after_ms: 20 }
      : { type: "ack", status: "accepted" };
    setImmediate(() => room.deliver({ ...answer, id: `b${++room.seq}`, seq: room.seq, reply_to: body.id }));
  });
  const client = new LkbotClient(room, { timeoutMs: 5_000 });
  client.tools.register("where", {}, () => "here");
  await client.start();
  const twice = new Promise((resolve) => {
    room.on("sent", () => {
      if (room.sent.filter((b) => b.type === "tool.result").length === 2) resolve();
    });
  });
  room.deliver({ type: "tool.call", id: "b50-z", seq: 50, reply_to: "m", turn: "t", call_id: "c9", name: "where", arguments: {} });
  await twice;
  const results = room.sent.filter((b) => b.type === "tool.result");
  assert.deepEqual(results.map((b) => b.output), ["here", "here"]);
  assert.notEqual(results[0].id, results[1].id);
});
