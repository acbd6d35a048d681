// LiveKit's stock React hooks (@livekit/components-react 2.9: useSession, useAgent,
// useSessionMessages), as the agent starter apps use them, talking to lkbot with no
// lkbot-specific code: chat goes out on `lk.chat`, replies come back privately as
// `lk.transcription` streams, and the agent's state is its `lk.agent.state` attribute.
import { SessionProvider, useAgent, useSession, useSessionMessages } from "@livekit/components-react";
import { ParticipantKind, TokenSource } from "livekit-client";
import { useEffect, useState } from "react";
import { createRoot } from "react-dom/client";

// the LiveKit-style token endpoint `bot up` serves (POST {room_name, participant_identity})
const tokenSource = TokenSource.endpoint("/token");

function Chat() {
  const agent = useAgent();
  const { messages, send, isSending } = useSessionMessages();
  const [text, setText] = useState("");
  const ready = agent.state === "listening" || agent.state === "thinking" || agent.state === "speaking";
  return (
    <>
      <header>
        <h1>lkbot</h1>
        <span id="status" role="status" data-state={agent.state}>
          agent: {agent.state}
          {agent.failureReasons ? ` (${agent.failureReasons.join("; ")})` : ""}
        </span>
      </header>
      <main id="log" aria-live="polite">
        {messages.map((m) => (
          <div
            key={m.id}
            className={`bubble ${
              m.from?.isLocal ? "user" : m.from?.kind === ParticipantKind.AGENT ? "bot" : "other"
            }`}
            data-from={m.from?.identity}
          >
            {m.message}
          </div>
        ))}
      </main>
      <form
        id="compose"
        onSubmit={(e) => {
          e.preventDefault();
          if (!text.trim()) return;
          void send(text.trim());
          setText("");
        }}
      >
        <textarea
          name="text"
          rows={2}
          value={text}
          disabled={!ready}
          onChange={(e) => setText(e.target.value)}
          placeholder={ready ? "Message" : "waiting for the agent…"}
        />
        <button type="submit" id="send" disabled={!ready || isSending}>
          Send
        </button>
      </form>
    </>
  );
}

function App() {
  const params = new URLSearchParams(location.search);
  const [identity] = useState(
    () => params.get("identity") ?? `guest-${Math.random().toString(36).slice(2, 6)}`,
  );
  const session = useSession(tokenSource, {
    roomName: params.get("room") ?? "demo",
    participantIdentity: identity,
    participantName: identity,
  });
  useEffect(() => {
    // a text chat: no microphone (the agent starters enable it by default)
    void session.start({ tracks: { microphone: { enabled: false } } });
    return () => {
      void session.end();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  return (
    <SessionProvider session={session}>
      <Chat />
    </SessionProvider>
  );
}

createRoot(document.getElementById("root")!).render(<App />);
