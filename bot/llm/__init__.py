"""The language model: an OpenAI-compatible endpoint (`endpoint`), the offline local
model (`local`), and the tools the model may call (`tools`)."""
