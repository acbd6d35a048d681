"""LiveKit: the worker that joins rooms (`worker`), the Transport over `rtc.Room`
(`rtc_transport`), client tokens (`tokens`)."""
