"""What one conversation keeps and sends: the outbox (`seq`, ordered publishing), the
history, the journal (the store's side: claims, batched writes). Below the turns and
the dispatcher, which both write through it; it imports neither."""
