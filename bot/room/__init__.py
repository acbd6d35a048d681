"""The room connection: the Transport over `rtc.Room` (`rtc_transport`), LiveKit's
stock chat UIs (`lk_chat`), room options (`options`), client tokens (`tokens`)."""
