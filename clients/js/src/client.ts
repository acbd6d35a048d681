/**
 * The lkbot protocol over a livekit-client `Room`: finds the bot, handshakes until
 * `session.ready`, sends messages (chunked when large), reassembles the bot's chunks,
 * drops replays and anything not sent by the bot, and hands out turns.
 */
import {
  ParticipantKind,
  Room,
  RoomEvent,
  type RemoteParticipant,
  type RoomConnectOptions,
} from "livekit-client";
import { Reassembler, byteLength, split } from "./chunks.js";
import type {
  Ack,
  BotMessage,
  Error as BotError,
  HistoryPage,
  Pong,
  SessionReady,
  ToolCall,
} from "./generated/bot.js";
import type {
  ChatCancel,
  ChatMessage,
  ClientInfo,
  ClientMessage,
  ClientTool,
  HistoryGet,
  SessionHello,
  ToolApprove,
  ToolResult,
} from "./generated/client.js";
import { Turn } from "./turn.js";

export const PROTOCOL_ATTRIBUTE = "lkbot.protocol";
export const CLIENT_ATTRIBUTE = "lkbot.client";
export const AGENT_NAME_ATTRIBUTE = "lk.agent.name";
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const DIRECT = new Set(["ack", "session.ready", "history.page", "pong", "error"]);

export interface LkbotClientOptions {
  /** The data topic the bot listens on (`BOT_TOPICS`). Default "lkbot". */
  topic?: string;
  /** Talk only to a bot with this `lk.agent.name` (explicit dispatch). Default: any. */
  agentName?: string;
  /** Sent in `session.hello`. */
  client?: ClientInfo;
  /** How long to wait for the bot to join, and then for `session.ready`. Default 30 s. */
  timeoutMs?: number;
  /** Largest packet sent before `session.ready` tells the bot's limit. Default 15000. */
  maxPacket?: number;
}

type Body<T extends ClientMessage> = T extends unknown
  ? Omit<T, "v" | "id"> & { id?: string }
  : never;
type Answer = Exclude<
  BotMessage,
  { type: `turn.${string}` } | { type: "chunk" } | { type: "tool.call" }
>;

/** A tool this client runs: its arguments in, its output (any JSON) out; what it
 * throws is the error the model is told. */
export type ToolHandler = (args: unknown) => unknown;

/** The tools this client runs itself (protocol v1.1), declared in `session.hello`. */
export class ClientTools {
  private readonly entries = new Map<string, { spec: ClientTool; handler: ToolHandler }>();
  constructor(private readonly changed: () => void) {}

  /** Offers `name` to the model in this user's turns (declared at once if connected). */
  register(
    name: string,
    spec: { description?: string; parameters?: Record<string, unknown> },
    handler: ToolHandler,
  ): void {
    const parameters = (spec.parameters ?? { type: "object" }) as ClientTool["parameters"];
    this.entries.set(name, { spec: { name, description: spec.description ?? "", parameters }, handler });
    this.changed();
  }

  unregister(name: string): void {
    if (this.entries.delete(name)) this.changed();
  }

  get size(): number {
    return this.entries.size;
  }

  declarations(): ClientTool[] {
    return [...this.entries.values()].map((e) => e.spec);
  }

  handler(name: string): ToolHandler | undefined {
    return this.entries.get(name)?.handler;
  }
}

/** The bot refused a request with an `error` message (its `code` says why). */
export class LkbotError extends Error {
  constructor(readonly answer: BotError) {
    super(`${answer.code}: ${answer.message}`);
    this.name = "LkbotError";
  }
  get code(): BotError["code"] {
    return this.answer.code;
  }
}

/** What `p` settles with within `ms`, or null. */
function within<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class LkbotClient {
  readonly room: Room;
  readonly topic: string;
  /** `session.ready` of the current session (null until the handshake completed). */
  ready: SessionReady | null = null;
  /** The bot's identity, once found. */
  botIdentity: string | null = null;
  /** The end of the unbroken run of seqs received: what a resume asks for. */
  lastSeq = 0;
  /** Every message the bot sent us, in order (after reassembly and replay removal). */
  readonly messages: BotMessage[] = [];
  /** Called for every message from the bot. */
  onMessage: ((msg: BotMessage) => void) | null = null;
  /**
   * Called with the turn id when the bot asks this user's approval in a turn this
   * client did not start: one that began before a page reload (the bot asks again after
   * a fresh handshake) or on another device. `adopt(turnId)` then gives you that turn,
   * with what has arrived of it so far.
   */
  onWaitingTurn: ((turnId: string) => void) | null = null;

  private readonly opts: Required<Omit<LkbotClientOptions, "agentName">> & { agentName?: string };
  private frames = new Reassembler();
  private seen = new Set<string>();
  private seenOrder: string[] = [];
  private ahead = new Set<number>();
  private answers = new Map<string, (msg: Answer) => void>();
  private byMessage = new Map<string, Turn>();
  private byTurn = new Map<string, Turn>();
  private early = new Map<string, BotMessage[]>(); // turn events before their ack
  private counter = 0;
  /** call id -> the tool.result sent (null while the handler runs) */
  private toolResults = new Map<string, Body<ToolResult> | null>();
  /** Tools this client runs; `tools.register(name, {description, parameters}, handler)`. */
  readonly tools: ClientTools = new ClientTools(() => {
    if (this.ready) void this.handshake(false).catch(() => undefined);
  });
  private readonly prefix = Math.random().toString(36).slice(2, 8);
  private closed = false;

  constructor(room: Room, options: LkbotClientOptions = {}) {
    this.room = room;
    this.topic = options.topic ?? "lkbot";
    this.opts = {
      topic: this.topic,
      client: options.client ?? { name: "lkbot-js", version: "1.0.0" },
      timeoutMs: options.timeoutMs ?? 30_000,
      maxPacket: options.maxPacket ?? 15_000,
      ...(options.agentName !== undefined ? { agentName: options.agentName } : {}),
    };
    room.on(RoomEvent.DataReceived, this.onData);
    room.on(RoomEvent.Reconnected, this.onReconnected);
    room.on(RoomEvent.ParticipantDisconnected, this.onLeft);
    room.on(RoomEvent.Disconnected, this.onDisconnected);
  }

  /** Joins the room (data only), waits for the bot and handshakes. */
  static async connect(
    url: string,
    token: string,
    options: LkbotClientOptions & { connect?: RoomConnectOptions } = {},
  ): Promise<LkbotClient> {
    const room = new Room();
    await room.connect(url, token, { autoSubscribe: false, ...options.connect });
    const client = new LkbotClient(room, options);
    try {
      await client.start();
    } catch (e) {
      await room.disconnect();
      throw e;
    }
    return client;
  }

  /** On a room you connected yourself: announce, wait for the bot, handshake. */
  async start(): Promise<SessionReady> {
    void this.openSending(); // while the bot comes
    await this.announce();
    this.botIdentity = await this.waitForBot();
    return this.handshake(false);
  }

  async disconnect(): Promise<void> {
    await this.room.disconnect();
  }

  // -- requests --

  /** Sends a chat message; the returned turn streams the answer. */
  send(text: string, options: Omit<Body<ChatMessage>, "type" | "text"> = {}): Turn {
    const id = options.id ?? this.newId();
    const turn = new Turn(id, async (t) => {
      await this.cancel(t.id ?? undefined);
    });
    this.byMessage.set(id, turn);
    this.post<ChatMessage>({ ...options, id, type: "chat.message", text }).catch((e) => {
      this.byMessage.delete(id);
      turn._abort(e);
    });
    return turn;
  }

  /**
   * The turn `turnId` as a `Turn`, for one this client did not start (see
   * `onWaitingTurn`): its events from here on, after those that arrived before.
   */
  adopt(turnId: string): Turn {
    const known = this.byTurn.get(turnId);
    if (known) return known;
    const turn = new Turn(turnId, async (t) => {
      await this.cancel(t.id ?? undefined);
    });
    turn.id = turnId;
    this.byTurn.set(turnId, turn);
    for (const early of this.early.get(turnId) ?? []) this.toTurn(turn, early);
    this.early.delete(turnId);
    return turn;
  }

  /** Cancels a turn (default: the running one). Resolves with the bot's ack. */
  async cancel(turn?: string): Promise<Ack> {
    const body: Body<ChatCancel> = { type: "chat.cancel", ...(turn ? { turn } : {}) };
    return (await this.request(body)) as Ack;
  }

  /** Answers a `tool.approval_request` (an `approvalRequest` event of a turn): the
   * ack says `accepted`, `duplicate` (answered already) or `noop` (no longer waiting). */
  async approve(callId: string, approved: boolean, reason?: string): Promise<Ack> {
    const body: Body<ToolApprove> = { type: "tool.approve", call_id: callId, approved };
    if (reason) body.reason = reason;
    return (await this.request(body)) as Ack;
  }

  /** A page of this user's history, newest last. */
  async history(options: Omit<Body<HistoryGet>, "type"> = {}): Promise<HistoryPage> {
    return (await this.request({ type: "history.get", ...options })) as HistoryPage;
  }

  /** Forgets this user's history (and cancels what runs). */
  async reset(): Promise<Ack> {
    return (await this.request({ type: "history.reset" })) as Ack;
  }

  async ping(): Promise<Pong> {
    return (await this.request({ type: "ping" })) as Pong;
  }

  /** Sends one message and waits for its direct answer; an `error` answer rejects. */
  async request(body: Body<ClientMessage>, timeoutMs = this.opts.timeoutMs): Promise<Answer> {
    const id = body.id ?? this.newId();
    const answer = this.answerOf(id, timeoutMs);
    answer.catch(() => undefined); // awaited below, unless posting fails first
    await this.post({ ...body, id } as Body<ClientMessage> & { id: string });
    const msg = await answer;
    if (msg.type === "error") throw new LkbotError(msg);
    return msg;
  }

  // -- connection --

  /**
   * livekit-client negotiates the connection a participant sends data on at its first
   * packet, so the first `session.hello` waited for an offer, an answer, ICE, DTLS and
   * SCTP. A packet addressed to ourselves starts that now: livekit-server never forwards
   * a packet to its sender, so nobody receives it.
   */
  private async openSending(): Promise<void> {
    const me = this.room.localParticipant.identity;
    try {
      await this.room.localParticipant.publishData(new Uint8Array([0]), {
        reliable: true,
        destinationIdentities: [me],
        topic: "lkbot.warm-up",
      });
    } catch {
      /* the first real packet negotiates instead */
    }
  }

  private async announce(): Promise<void> {
    // Joins of participants that publish nothing are announced in 3 s batches; an
    // attribute change at once. Tokens without `canUpdateOwnMetadata` refuse it: then
    // the handshake's resends cover the wait.
    try {
      await this.room.localParticipant.setAttributes({ [CLIENT_ATTRIBUTE]: "1" });
    } catch {
      /* not permitted: fine */
    }
  }

  private isBot(p: RemoteParticipant | undefined): p is RemoteParticipant {
    if (!p || p.kind !== ParticipantKind.AGENT || !(PROTOCOL_ATTRIBUTE in p.attributes)) {
      return false;
    }
    const name = this.opts.agentName;
    return name === undefined || p.attributes[AGENT_NAME_ATTRIBUTE] === name;
  }

  private findBot(): string | null {
    for (const p of this.room.remoteParticipants.values()) {
      if (this.isBot(p)) return p.identity;
    }
    return null;
  }

  /** Waits (bounded) until the bot is in the room; its identity. */
  waitForBot(timeoutMs = this.opts.timeoutMs): Promise<string> {
    const found = this.findBot();
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const events = [
        RoomEvent.ParticipantConnected,
        RoomEvent.ParticipantAttributesChanged,
      ] as const;
      const check = () => {
        const bot = this.findBot();
        if (bot) {
          done();
          resolve(bot);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no lkbot joined the room within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        for (const e of events) this.room.off(e, check);
      };
      for (const e of events) this.room.on(e, check);
    });
  }

  /**
   * `session.hello` until `session.ready` arrives, with backoff (250 ms doubling to
   * 4 s), bounded by the timeout. A packet sent just after joining can reach the bot
   * before it has seen us join; it cannot be answered, so each try has a new id. The
   * answer to any try counts: on a busy box one may come after the next was sent.
   */
  private async handshake(resume: boolean): Promise<SessionReady> {
    const deadline = Date.now() + this.opts.timeoutMs;
    let wait = 250;
    const ids: string[] = [];
    let settle: (a: Answer) => void = () => undefined;
    let answered = new Promise<Answer>((resolve) => (settle = resolve));
    const forget = (): void => {
      for (const id of ids) this.answers.delete(id);
      ids.length = 0;
      answered = new Promise<Answer>((resolve) => (settle = resolve));
    };
    try {
      for (;;) {
        if (this.closed) throw new Error("disconnected");
        const body: Body<SessionHello> = { type: "session.hello", client: this.opts.client };
        if (resume) body.resume = { last_seq: this.lastSeq };
        if (this.tools.size) body.tools = this.tools.declarations();
        const id = this.newId();
        ids.push(id);
        this.answers.set(id, (msg) => settle(msg));
        let answer: Answer | null = null;
        try {
          await this.post({ ...body, id });
          answer = await within(answered, wait);
        } catch {
          answer = null; // not sent (e.g. while the connection is re-established)
        }
        if (answer === null) {
          if (Date.now() + wait > deadline) throw new Error("the bot did not answer session.hello");
          await sleep(Math.min(wait, 250));
          wait = Math.min(wait * 2, 4000);
          continue;
        }
        forget(); // what the earlier tries get from now on no longer counts
        if (answer.type === "session.ready") {
          this.ready = answer;
          return answer;
        }
        if (resume && answer.type === "error" && answer.code === "resume_gap") {
          // what we missed is gone: start from what comes next (history.get has it all)
          resume = false;
          this.lastSeq = 0;
          this.ahead.clear();
          continue;
        }
        throw new LkbotError(answer as BotError);
      }
    } finally {
      forget();
    }
  }

  private onReconnected = (): void => {
    // LiveKit drops what is published while a connection is re-established
    if (!this.ready) return;
    void this.announce()
      .then(() => this.handshake(true))
      .catch(() => undefined);
  };

  private onLeft = (p: RemoteParticipant): void => {
    if (p.identity !== this.botIdentity || this.closed) return;
    // the bot left (its worker stopped): the next one continues the stored conversation
    this.ready = null;
    this.botIdentity = null;
    void this.waitForBot()
      .then((bot) => {
        this.botIdentity = bot;
        return this.handshake(this.lastSeq > 0);
      })
      .catch(() => undefined);
  };

  private onDisconnected = (): void => {
    this.closed = true;
    const reason = new Error("disconnected from the room");
    for (const turn of new Set([...this.byMessage.values(), ...this.byTurn.values()])) {
      turn._abort(reason);
    }
    this.byMessage.clear();
    this.byTurn.clear();
  };

  // -- sending --

  private newId(): string {
    return `${this.prefix}-${++this.counter}`;
  }

  private async post<T extends ClientMessage>(body: Body<T> & { id: string }): Promise<void> {
    // checked before every send: a participant that took the bot's identity (LiveKit
    // lets a newer connection with an identity replace the older) is no agent
    if (this.botIdentity !== null && !this.isBot(this.room.remoteParticipants.get(this.botIdentity))) {
      this.botIdentity = null;
    }
    const bot = (this.botIdentity ??= this.findBot());
    if (!bot) throw new Error("the bot is not in the room");
    const text = JSON.stringify({ v: 1, ...body });
    const maxPacket = this.ready?.limits.max_packet ?? this.opts.maxPacket;
    const frames = byteLength(text) <= maxPacket ? [text] : split(text, body.id, maxPacket);
    for (const frame of frames) {
      await this.room.localParticipant.publishData(encoder.encode(frame), {
        reliable: true,
        destinationIdentities: [bot],
        topic: this.topic,
      });
    }
  }

  private answerOf(id: string, timeoutMs: number): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.answers.delete(id);
        reject(new Error(`no answer to ${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.answers.set(id, (msg) => {
        clearTimeout(timer);
        this.answers.delete(id);
        resolve(msg);
      });
    });
  }

  // -- receiving --

  private onData = (
    payload: Uint8Array,
    participant?: RemoteParticipant,
    _kind?: unknown,
    topic?: string,
  ): void => {
    // anyone in the room can publish on this topic: take only the bot's packets
    if (topic !== this.topic || !this.isBot(participant)) return;
    let msg: BotMessage;
    try {
      msg = JSON.parse(decoder.decode(payload)) as BotMessage;
      if (msg.type === "chunk") {
        const whole = this.frames.feed(msg);
        if (whole === null) return;
        msg = JSON.parse(whole) as BotMessage;
      }
    } catch {
      return; // not JSON: not from a bot speaking this protocol
    }
    if (msg.type === "tool.call") this.runTool(msg); // a replay too: its result may be lost
    if (msg.id) {
      if (this.seen.has(msg.id)) return; // a replay (resume) of what we have
      this.remember(msg.id);
    }
    if ("seq" in msg) this.track(msg.seq);
    this.messages.push(msg);
    this.onMessage?.(msg);
    this.route(msg);
  };

  /** Runs a `tool.call` once per call id and answers `tool.result`; a replayed call
   * gets the result it had again. */
  private runTool(call: ToolCall): void {
    if (this.toolResults.has(call.call_id)) {
      const done = this.toolResults.get(call.call_id);
      if (done) void this.sendResult(done);
      return;
    }
    this.toolResults.set(call.call_id, null);
    if (this.toolResults.size > 256) this.toolResults.delete(this.toolResults.keys().next().value!);
    const handler = this.tools.handler(call.name);
    void (async () => {
      let body: Body<ToolResult>;
      try {
        if (!handler) throw new Error(`this client has no tool ${call.name}`);
        const output = await handler(call.arguments ?? {});
        body = { type: "tool.result", call_id: call.call_id, output: (output ?? null) as ToolResult["output"] };
      } catch (e) {
        const message = (e instanceof Error ? e.message : String(e)).slice(0, 1024) || "failed";
        body = { type: "tool.result", call_id: call.call_id, error: { message } };
      }
      this.toolResults.set(call.call_id, body);
      await this.sendResult(body);
    })();
  }

  /** A `tool.result` until the bot takes it: a retryable refusal (`rate_limited` of a
   * busy sender) is sent again after the wait it names; a repeat is harmless
   * (`duplicate`, `noop`). Unsent or unanswered, it goes again if a resume replays the call. */
  private async sendResult(body: Body<ToolResult>): Promise<void> {
    let wait = 250;
    for (let attempt = 0; attempt < 8; attempt++) {
      try {
        await this.request(body, 10_000);
        return;
      } catch (e) {
        if (!(e instanceof LkbotError) || !e.answer.retryable) return;
        await sleep(Math.max(wait, e.answer.retry_after_ms ?? 0));
        wait = Math.min(wait * 2, 4000);
      }
    }
  }

  private remember(id: string): void {
    this.seen.add(id);
    this.seenOrder.push(id);
    if (this.seenOrder.length > 4096) this.seen.delete(this.seenOrder.shift()!);
  }

  private track(seq: number): void {
    if (!seq) return;
    if (this.lastSeq === 0 && this.ahead.size === 0) this.lastSeq = seq - 1;
    if (seq === this.lastSeq + 1) {
      this.lastSeq = seq;
      while (this.ahead.delete(this.lastSeq + 1)) this.lastSeq += 1;
    } else if (seq > this.lastSeq + 1) {
      this.ahead.add(seq);
    }
  }

  private route(msg: BotMessage): void {
    if (DIRECT.has(msg.type)) {
      const answer = msg as Answer;
      const to = answer.reply_to;
      if (!to) return;
      this.answers.get(to)?.(answer);
      const turn = this.byMessage.get(to);
      if (!turn) return;
      this.byMessage.delete(to);
      if (answer.type === "error") turn._refused(answer);
      else if (answer.type === "ack" && answer.turn) {
        if (answer.status === "duplicate" && this.byTurn.has(answer.turn)) return;
        turn.id = answer.turn;
        this.byTurn.set(answer.turn, turn);
        for (const early of this.early.get(answer.turn) ?? []) this.toTurn(turn, early);
        this.early.delete(answer.turn);
      }
      return;
    }
    if (!("turn" in msg) || typeof msg.turn !== "string") return;
    const turn = this.byTurn.get(msg.turn);
    if (turn) this.toTurn(turn, msg);
    else {
      const list = this.early.get(msg.turn) ?? [];
      if (list.length < 1024) list.push(msg);
      this.early.set(msg.turn, list);
      if (this.early.size > 64) this.early.delete(this.early.keys().next().value!);
      // a request answers no message of ours: an ack would have named its turn first
      const ours = this.byMessage.has(msg.reply_to ?? "");
      if (msg.type === "tool.approval_request" && !ours) this.onWaitingTurn?.(msg.turn);
    }
  }

  private toTurn(turn: Turn, msg: BotMessage): void {
    switch (msg.type) {
      case "turn.start":
        turn._emit({ type: "start", turn: msg.turn });
        break;
      case "turn.status":
        turn._emit({ type: "status", state: msg.state });
        break;
      case "turn.delta":
        turn._emit({ type: "delta", text: msg.text });
        break;
      case "turn.tool_call":
        turn._toolCall(msg);
        break;
      case "turn.tool_result":
        turn._emit({
          type: "toolResult",
          callId: msg.call_id,
          status: msg.status,
          output: msg.output ?? null,
        });
        break;
      case "turn.reply":
        turn._emit({ type: "reply", text: msg.text });
        break;
      case "tool.approval_request":
        turn._emit({
          type: "approvalRequest",
          callId: msg.call_id,
          name: msg.name,
          arguments: msg.arguments ?? null,
          expiresAt: msg.expires_at,
        });
        break;
      case "turn.end":
        this.byTurn.delete(msg.turn);
        turn._end(msg);
        break;
    }
  }
}
