/**
 * Fetching a token from a LiveKit-style token endpoint (the one `bot up` serves, or
 * yours): POST {room_name, participant_identity, participant_name} →
 * {server_url, participant_token}. The same format `TokenSource.endpoint()` of
 * livekit-client uses, so `useSession` of @livekit/components-react works with it too.
 */
export interface ConnectionDetails {
  serverUrl: string;
  participantToken: string;
}

export async function fetchToken(
  endpoint: string,
  request: { room: string; identity: string; name?: string },
  init: RequestInit = {},
): Promise<ConnectionDetails> {
  const response = await fetch(endpoint, {
    ...init,
    method: "POST",
    headers: { "Content-Type": "application/json", ...init.headers },
    body: JSON.stringify({
      room_name: request.room,
      participant_identity: request.identity,
      participant_name: request.name ?? request.identity,
    }),
  });
  if (!response.ok) {
    throw new Error(`token endpoint ${endpoint}: ${response.status} ${await response.text()}`);
  }
  const body = (await response.json()) as { server_url: string; participant_token: string };
  return { serverUrl: body.server_url, participantToken: body.participant_token };
}
