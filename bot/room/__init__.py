"""The room connection: the Transport over `rtc.Room` (`rtc_transport`), LiveKit's
stock chat UIs (`lk_chat`), what can wait for a quiet room
(`lane`), room options (`options`), client tokens (`tokens`)."""
