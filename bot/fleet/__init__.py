"""The fleet: what keeps every room served when workers come and go.

Workers know each other only through the conversation store (`leases.py`: a lease per
worker, renewed by each process, readable on every machine that shares the store,
and a leader lease so that one dispatch watchdog runs per fleet), and through LiveKit
(`watchdog.py`: rooms that asked for the bot and have none; `one_bot.py`: two bots of
ours in one room). Who writes a conversation is settled by the store's fencing tokens
(`bot/store/`), not here.
"""
