"""A TCP proxy in front of the test server that drops a connection at a chosen moment: after the
server has answered a statement, before the client has read the answer (the reply is lost)."""

from __future__ import annotations

from bench.roundtrips import Passing, Relay


class DroppingProxy(Relay):
    """`async with DroppingProxy(dsn) as proxy:` connect to `proxy.dsn`. After `proxy.arm(sent,
    answered)`, the first connection whose client sends bytes holding `sent` is cut as soon as
    the server's reply holds `answered`: that reply never reaches the client. Once only."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self._sent: bytes | None = None
        self._answered = b""
        self.dropped = 0

    def arm(self, sent: bytes, answered: bytes) -> None:
        self._sent, self._answered = sent, answered

    def connection(self) -> Passing:
        marked = [False]  # this connection's client sent the armed statement

        def passing(data: bytes, from_client: bool) -> bool:
            if from_client and self._sent is not None and self._sent in data:
                marked[0], self._sent = True, None
            if not from_client and marked[0] and self._answered in data:
                marked[0] = False
                self.dropped += 1
                return False
            return True

        return passing
