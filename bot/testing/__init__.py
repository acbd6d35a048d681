"""Test helpers shipped with the bot: an OpenAI-compatible scripted LLM server."""
