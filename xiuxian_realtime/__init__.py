"""xiuxian-realtime: the real-time layer of a cultivation idle game.

Start reading at `app.py` (how the parts are wired), then `hub.py` (delivery),
`transport.py` (WebSocket), `sessions.py` (online/offline) and `protocol.py` (the rules).
"""

__version__ = "0.1.0"
