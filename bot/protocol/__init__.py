"""Wire protocol v1, usable on its own (it imports nothing else from `bot`).

`inbound` (client -> bot models), `outbound` (bot -> client models), `codec` (bytes <->
models, validation at the edge), `chunking` (frames for large messages), `codes` (error
codes), `errors` (the exceptions that carry them), `schema` (JSON Schema), `version`."""
