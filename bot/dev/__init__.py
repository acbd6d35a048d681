"""Local development: a loopback livekit-server (`livekit_server`), `bot up` (`stack`),
helper-process handling (`processes`)."""
