// The client's handshake on a stand-in room (no server): what it publishes is answered
// by a script here, and comes back through the client's own DataReceived handler.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { ParticipantKind, RoomEvent } from "livekit-client";
import { LkbotClient, PROTOCOL_ATTRIBUTE } from "../dist/index.js";

const bot = {
  identity: "bot",
  kind: ParticipantKind.AGENT,
  attributes: { [PROTOCOL_ATTRIBUTE]: "1" },
};

class StandInRoom extends EventEmitter {
  constructor(onHello) {
    super();
    this.hellos = [];
    this.remoteParticipants = new Map([[bot.identity, bot]]);
    this.localParticipant = {
      setAttributes: async () => undefined,
      publishData: async (bytes, options) => {
        if (options.topic !== "lkbot") return; // the client opening its sending side
        const body = JSON.parse(new TextDecoder().decode(bytes));
        assert.equal(body.type, "session.hello");
        this.hellos.push(body.id);
        setImmediate(() => onHello(this));
      },
    };
  }
  answer(replyTo, seq) {
    const ready = {
      v: 1,
      type: "session.ready",
      id: `b${seq}`,
      seq,
      ts: 1,
      reply_to: replyTo,
      protocol: "1.0",
      features: [],
      tools: [],
      limits: {
        max_packet: 15000,
        max_text_chars: 8000,
        max_message_bytes: 65536,
        max_queue: 8,
        rate_burst: 10,
        rate_per_second: 2,
        history_max_items: 50,
      },
    };
    const bytes = new TextEncoder().encode(JSON.stringify(ready));
    this.emit(RoomEvent.DataReceived, bytes, bot, undefined, "lkbot");
  }
  async disconnect() {}
}

test("the answer to an earlier hello counts", async () => {
  // only the first hello is ever answered, and only once the second has gone out:
  // waiting for the newest one's answer alone would never end
  const room = new StandInRoom((r) => {
    if (r.hellos.length === 2) r.answer(r.hellos[0], 1);
  });
  const client = new LkbotClient(room, { timeoutMs: 20_000 });
  const ready = await client.start();
  assert.equal(ready.reply_to, room.hellos[0]);
  assert.equal(room.hellos.length, 2);
});

test("unanswered hellos end within the timeout", async () => {
  const room = new StandInRoom(() => undefined);
  const client = new LkbotClient(room, { timeoutMs: 1_000 });
  await assert.rejects(client.start(), /did not answer session.hello/);
  assert.ok(room.hellos.length >= 2);
});

test("nothing goes to a participant that took the bot's identity", async () => {
  const room = new StandInRoom((r) => r.answer(r.hellos.at(-1), r.hellos.length));
  const client = new LkbotClient(room, { timeoutMs: 5_000 });
  await client.start();
  // the bot's identity reconnects as a standard participant (not an agent)
  const impostor = { identity: "bot", kind: ParticipantKind.STANDARD, attributes: { [PROTOCOL_ATTRIBUTE]: "1" } };
  room.remoteParticipants.set("bot", impostor);
  room.emit(RoomEvent.ParticipantConnected, impostor);
  const before = room.hellos.length;
  const turn = client.send("my secret");
  await assert.rejects(turn.result, /the bot is not in the room/);
  assert.equal(room.hellos.length, before); // nothing was published to it
});
