// The chat page `bot up` serves: joins a room with a token from this server's /token,
// and chats with the bot through @lkbot/client. No framework.
import { LkbotClient, fetchToken, type Turn } from "@lkbot/client";
import { Room } from "livekit-client";

const $ = <T extends HTMLElement>(sel: string) => document.querySelector(sel) as T;
const log = $<HTMLElement>("#log");
const status = $<HTMLElement>("#status");
const join = $<HTMLFormElement>("#join");
const compose = $<HTMLFormElement>("#compose");
const textarea = compose.elements.namedItem("text") as HTMLTextAreaElement;
const sendButton = $<HTMLButtonElement>("#send");
const cancelButton = $<HTMLButtonElement>("#cancel");

let client: LkbotClient | null = null;
const running = new Set<Turn>();

function line(kind: string, text: string): HTMLElement {
  const el = document.createElement("div");
  el.className = `bubble ${kind}`;
  el.textContent = text;
  log.append(el);
  log.scrollTop = log.scrollHeight;
  return el;
}

function setStatus(text: string): void {
  status.textContent = text;
}

async function connect(room: string, identity: string): Promise<void> {
  setStatus("connecting…");
  const { serverUrl, participantToken } = await fetchToken(new URL("token", location.href).href, {
    room,
    identity,
  });
  setStatus("waiting for the bot…");
  const lkRoom = new Room();
  await lkRoom.connect(serverUrl, participantToken, { autoSubscribe: false });
  client = new LkbotClient(lkRoom, { client: { name: "lkbot-web", version: "1.0.0" } });
  // a tool this page runs itself (protocol v1.1): the model may ask what the user sees
  client.tools.register(
    "get_page_info",
    { description: "The page the user is on: its title, address, language and local time." },
    () => ({
      title: document.title,
      url: location.origin + location.pathname,
      language: navigator.language,
      local_time: new Date().toString(),
    }),
  );
  // a turn waiting for this user's yes that began before a reload: shown after the history
  const waiting: string[] = [];
  let onWaiting = (turnId: string): void => void waiting.push(turnId);
  client.onWaitingTurn = (turnId) => onWaiting(turnId);
  try {
    await client.start();
  } catch (e) {
    await lkRoom.disconnect(); // as LkbotClient.connect does: no half-joined room left
    throw e;
  }
  const tools = client.ready?.tools.map((t) => t.name).join(", ") || "none";
  setStatus(`connected to ${room} as ${identity}`);
  line("note", `The bot is here (tools: ${tools}). Your conversation is private.`);
  textarea.disabled = sendButton.disabled = false;
  document.body.dataset.ready = "true";
  textarea.focus();
  const page = await client.history({ limit: 50 });
  for (const item of page.items) line(item.role === "user" ? "user" : "bot", item.text);
  onWaiting = (turnId) => {
    if (client) void follow(client.adopt(turnId));
  };
  for (const turnId of waiting.splice(0)) onWaiting(turnId);
}

/** Asks the user whether a tool may run (`tool.approval_request`): Approve / Deny. */
function askApproval(callId: string, name: string, args: unknown): void {
  if (log.querySelector(`[data-call="${CSS.escape(callId)}"]`)) return; // asked again
  const el = line("approval", `The bot wants to run ${name}(${JSON.stringify(args ?? {})}). `);
  el.dataset.call = callId;
  const buttons = (["Approve", "Deny"] as const).map((label) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.className = label.toLowerCase();
    b.addEventListener("click", () => {
      for (const other of buttons) other.disabled = true;
      client
        ?.approve(callId, label === "Approve")
        .then((ack) => (el.dataset.answer = ack.status))
        .catch((e: unknown) => line("error", String(e)));
    });
    el.append(b);
    return b;
  });
}

/** The call was settled (ran, denied, expired, cancelled): its prompt no longer asks. */
function settled(callId: string, status: string): void {
  const el = log.querySelector<HTMLElement>(`[data-call="${CSS.escape(callId)}"]`);
  if (!el) return;
  el.dataset.settled = status;
  for (const b of el.querySelectorAll("button")) b.disabled = true;
}

async function send(text: string): Promise<void> {
  if (!client) return;
  line("user", text);
  await follow(client.send(text, { on_busy: "queue" }));
}

/** Shows a turn's events as they come, until it ends. */
async function follow(turn: Turn): Promise<void> {
  running.add(turn);
  cancelButton.disabled = false;
  let bubble: HTMLElement | null = null;
  for await (const event of turn) {
    if (event.type === "delta") {
      bubble ??= line("bot streaming", "");
      bubble.dataset.turn = turn.id ?? "";
      bubble.textContent += event.text;
      log.scrollTop = log.scrollHeight;
    } else if (event.type === "toolCall") {
      line("tool", `⚙ ${event.name}(${JSON.stringify(event.arguments ?? {})})`);
      bubble = null; // text after the tool goes in a new bubble
    } else if (event.type === "toolResult") {
      line("tool", `↳ ${event.status}${event.output ? `: ${event.output}` : ""}`);
      settled(event.callId, event.status);
    } else if (event.type === "approvalRequest") {
      askApproval(event.callId, event.name, event.arguments);
    } else if (event.type === "reply") {
      // the whole reply (reassembled from chunks when large) replaces the streamed text
      bubble ??= line("bot streaming", "");
      bubble.textContent = event.text;
    } else if (event.type === "end") {
      bubble?.classList.remove("streaming");
      if (event.status === "cancelled") line("note", "cancelled");
      if (event.status === "failed") line("error", event.error?.message ?? event.reason ?? "failed");
    }
  }
  const result = await turn.result.catch((e: unknown) => {
    line("error", String(e));
    return null;
  });
  if (result?.refused) line("error", result.refused.message);
  running.delete(turn);
  cancelButton.disabled = running.size === 0;
}

join.addEventListener("submit", (e) => {
  e.preventDefault();
  const data = new FormData(join);
  join.querySelector("button")!.disabled = true;
  connect(String(data.get("room")), String(data.get("identity"))).catch((err: unknown) => {
    setStatus("not connected");
    line("error", `Could not connect: ${err instanceof Error ? err.message : String(err)}`);
    join.querySelector("button")!.disabled = false;
  });
});

compose.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = textarea.value.trim();
  if (!text) return;
  textarea.value = "";
  void send(text);
});

textarea.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    compose.requestSubmit();
  }
});

cancelButton.addEventListener("click", () => {
  for (const turn of running) void turn.cancel().catch(() => undefined);
});

// ?room=…&identity=… fills the form; &join=1 joins at once
const params = new URLSearchParams(location.search);
const identityInput = join.elements.namedItem("identity") as HTMLInputElement;
const roomInput = join.elements.namedItem("room") as HTMLInputElement;
roomInput.value = params.get("room") ?? roomInput.value;
identityInput.value = params.get("identity") ?? `guest-${Math.random().toString(36).slice(2, 6)}`;
if (params.get("join") === "1") join.requestSubmit();
