"""Wire protocol v1: pydantic models for both directions (`client`, `server`), the codec,
error codes and chunk framing. Import from the submodules."""
