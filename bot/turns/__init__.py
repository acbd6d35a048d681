"""Chat turns: a sender's queue (`queue`), one turn through the LLM and tools
(`engine`), its events on the wire (`emitter`, `coalescer`)."""
