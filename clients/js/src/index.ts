/**
 * @lkbot/client: talk to lkbot (a private, multi-user text chat bot for LiveKit rooms)
 * from the browser or Node with livekit-client.
 *
 *     const { serverUrl, participantToken } = await fetchToken(endpoint, { room, identity });
 *     const bot = await LkbotClient.connect(serverUrl, participantToken);
 *     for await (const event of bot.send("Hello!")) if (event.type === "delta") show(event.text);
 */
export { LkbotClient, LkbotError, ClientTools, PROTOCOL_ATTRIBUTE, CLIENT_ATTRIBUTE } from "./client.js";
export type { LkbotClientOptions, ToolHandler } from "./client.js";
export { Turn } from "./turn.js";
export type { TurnEvent, TurnResult } from "./turn.js";
export { fetchToken } from "./token.js";
export type { ConnectionDetails } from "./token.js";
export { split, Reassembler } from "./chunks.js";
export type * from "./generated/bot.js";
export type {
  ClientMessage,
  SessionHello,
  ChatMessage,
  ChatCancel,
  HistoryGet,
  HistoryReset,
  Ping,
  ChunkFrame,
  ClientInfo,
  Resume,
} from "./generated/client.js";
