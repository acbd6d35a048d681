/** A turn: one chat message and everything the bot streams in answer to it. */
import type {
  Error as BotError,
  ErrorInfo,
  TurnEnd,
  TurnToolCall,
  TurnToolResult,
  Usage,
} from "./generated/bot.js";

export type TurnEvent =
  | { type: "start"; turn: string }
  | { type: "status"; state: "thinking" | "tool" | "writing" | "awaiting_approval" }
  /** a tool that needs the user's yes: answer with `client.approve(callId, yes)` */
  | { type: "approvalRequest"; callId: string; name: string; arguments: unknown; expiresAt: number }
  | { type: "delta"; text: string }
  | { type: "toolCall"; callId: string; name: string; arguments: unknown }
  | { type: "toolResult"; callId: string; status: TurnToolResult["status"]; output: string | null }
  | { type: "reply"; text: string }
  | {
      type: "end";
      status: TurnEnd["status"];
      reason: string | null;
      error: ErrorInfo | null;
      usage: Usage | null;
    };

/** How a turn ended: its reply and `turn.end`, or the error that refused the message. */
export interface TurnResult {
  /** The whole reply text (`turn.reply`), null if the turn wrote none. */
  reply: string | null;
  /** `turn.end`, null when the message was refused (see `error`). */
  end: TurnEnd | null;
  /** The `error` answering the message (rate_limited, busy, invalid_message...), or null. */
  refused: BotError | null;
  /** The text streamed so far (`turn.delta`s joined): the reply of a cancelled turn. */
  text: string;
  toolCalls: TurnToolCall[];
}

type Listener = (event: TurnEvent) => void;

export class Turn implements AsyncIterable<TurnEvent> {
  /** The turn's id (`ack.turn`), once the bot accepted the message. */
  id: string | null = null;
  /** The `chat.message` id (its idempotency key). */
  readonly messageId: string;
  /** Resolves when the turn ends or the message is refused; never rejects for a bot answer. */
  readonly result: Promise<TurnResult>;

  private text = "";
  private reply: string | null = null;
  private toolCalls: TurnToolCall[] = [];
  private listeners = new Set<Listener>();
  private queue: TurnEvent[] = [];
  private finished = false;
  private settle!: (r: TurnResult) => void;
  private fail!: (e: unknown) => void;
  private wake: (() => void) | null = null;

  constructor(
    messageId: string,
    private readonly canceller: (turn: Turn) => Promise<void>,
  ) {
    this.messageId = messageId;
    this.result = new Promise<TurnResult>((resolve, reject) => {
      this.settle = resolve;
      this.fail = reject;
    });
    this.result.catch(() => undefined); // a caller that only iterates sees the error there
  }

  get done(): boolean {
    return this.finished;
  }

  /** Calls `listener` with every event from now on; returns a function that stops it. */
  on(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Asks the bot to cancel this turn (`chat.cancel`); the turn still ends with `turn.end`. */
  cancel(): Promise<void> {
    return this.canceller(this);
  }

  /** The events in order, ending after `end` (or at once if the message was refused). */
  async *[Symbol.asyncIterator](): AsyncIterator<TurnEvent> {
    let i = 0;
    for (;;) {
      while (i < this.queue.length) yield this.queue[i++]!;
      if (this.finished) return;
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  /** @internal */
  _emit(event: TurnEvent): void {
    if (this.finished) return;
    if (event.type === "delta") this.text += event.text;
    if (event.type === "reply") this.reply = event.text;
    this.queue.push(event);
    for (const l of this.listeners) l(event);
    this.wake?.();
    this.wake = null;
  }

  /** @internal */
  _toolCall(msg: TurnToolCall): void {
    this.toolCalls.push(msg);
    this._emit({ type: "toolCall", callId: msg.call_id, name: msg.name, arguments: msg.arguments });
  }

  /** @internal */
  _end(end: TurnEnd): void {
    this._emit({
      type: "end",
      status: end.status,
      reason: end.reason ?? null,
      error: end.error ?? null,
      usage: end.usage ?? null,
    });
    this._finish({ end, refused: null });
  }

  /** @internal */
  _refused(error: BotError): void {
    this._finish({ end: null, refused: error });
  }

  /** @internal: the client failed (disconnected before the turn ended). */
  _abort(reason: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.wake?.();
    this.fail(reason);
  }

  private _finish(r: { end: TurnEnd | null; refused: BotError | null }): void {
    if (this.finished) return;
    this.finished = true;
    this.wake?.();
    this.wake = null;
    this.settle({ ...r, reply: this.reply, text: this.text, toolCalls: this.toolCalls });
  }
}
