"""The agent protocol worker: registration with livekit-server (`link.py`), the rooms
of one process on one event loop (`host.py`), its capacity (`capacity.py`), its HTTP
port (`health.py`), `bot start`'s processes (`processes.py`) and what starts it all
(`serve.py`)."""
