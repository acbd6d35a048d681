"""Per-room serving: packets in (`transport`), one conversation per sender
(`conversation`), handlers called (`dispatcher`), answers out in order (`outbox`)."""
