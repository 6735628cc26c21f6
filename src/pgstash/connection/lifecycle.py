"""The one place that decides a connection's fate, through asyncpg's pool hooks:

- `init` (a new connection): the jsonb codec, and pgvector's codecs when the database has the
  `vector` type;
- `acquire` (every acquire, right after asyncpg's): liveness. An idle connection whose backend
  ended while it sat in the pool is refused before anything is sent on it (released, so asyncpg
  closes it; `acquire` takes another: the only retry of the connection layer). Not asyncpg's
  `setup` hook: that is two more coroutines and a proxy lookup on every acquire (issue 22 item 7);
- `reset` (every release, after asyncpg's own rollback and listener removal): a connection that
  ran only pgstash's statements goes back as it is (they hold transaction-scoped settings and
  locks only); one that ran the caller's SQL or a session is reset in full;
- `terminate`: a connection whose protocol state an error left unknown is never handed to the
  next caller;
- codecs later: a vector argument that failed to encode on a connection opened before
  `CREATE EXTENSION vector` (asyncpg raised it, so nothing was sent): the server's catalogue says
  whether the type exists now; if so the codecs are set and the statement may be sent again.

What pgstash knows of a connection lives on it (`PgstashConnection`, asyncpg's `connection_class`).
"""

from __future__ import annotations

import asyncio
import logging
import select
from collections.abc import Mapping
from typing import Any

import asyncpg

from pgstash.connection.codecs import VECTOR_TYPES, register_jsonb, register_vector_codecs
from pgstash.connection.driver import ConnectTimeout, call, classify, lost
from pgstash.connection.pooler import Pooling, Sessions
from pgstash.errors import DatabaseError
from pgstash.sql import names
from pgstash.sql.statements import Statement
from pgstash.sql.templates import named

__all__ = ["Lifecycle", "PgstashConnection"]

logger = logging.getLogger("pgstash")
_VECTOR_TYPES = names.vector_types.bind(names=list(VECTOR_TYPES))
_DISCARD_TEMP = named("DISCARD TEMP;", "reset")
_JIT_OFF_HERE = named("SET LOCAL jit = off;", "introspection")


class PgstashConnection(asyncpg.Connection):
    """asyncpg's connection, and what pgstash knows about it."""

    def __init__(self, protocol: Any, transport: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(protocol, transport, *args, **kwargs)
        # liveness: bytes waiting on an idle connection's socket are its backend's goodbye
        self.socket: Any = transport.get_extra_info("socket")
        self.poller: Any = None  # one poll object per connection, made at its first acquire
        self.callers = False  # ran the caller's SQL or a session: reset in full on release
        self.vector_codecs = False

    def direct(self) -> PgstashConnection:
        """The connection itself, also when asked through the pool's proxy (which forwards what it
        does not wrap). pgstash sends on the connection: a proxy whose connection died answers
        every later call "released back to the pool", which would hide what happened."""
        return self

    async def _introspect_types(self, typeoids: Any, timeout: Any) -> Any:
        """asyncpg's type introspection (a statement returns a type it has no codec for yet).
        asyncpg turns `jit` off, introspects and sets it back in three statements, at session
        level: through a transaction pooler each may land on another server connection, and even
        on one the restore is a session setting left behind (docs/deployment.md). Here it runs in
        one transaction (or the caller's) under `SET LOCAL jit = off`, asyncpg's toggle skipped:
        an override of asyncpg's method (no public hook); tests/test_pooler.py checks it exists."""
        caps = getattr(self, "_server_caps")  # noqa: B009  asyncpg's ServerCapabilities (private)
        if not caps.jit:
            return await super()._introspect_types(typeoids, timeout)  # type: ignore[misc]
        if self.is_in_transaction():
            return await self._introspect_without_jit(caps, typeoids, timeout)
        async with self.transaction():
            return await self._introspect_without_jit(caps, typeoids, timeout)

    async def _introspect_without_jit(self, caps: Any, typeoids: Any, timeout: Any) -> Any:
        await self.execute(_JIT_OFF_HERE)  # until the transaction ends: no session setting
        self._server_caps = caps._replace(jit=False)
        try:
            return await super()._introspect_types(typeoids, timeout)  # type: ignore[misc]
        finally:
            self._server_caps = caps


class Lifecycle:
    """The pool's hooks and the decisions about a connection during its use."""

    def __init__(
        self,
        *,
        dsn: str,
        max_size: int = 10,
        acquire_timeout: float | None = 30.0,
        connect_options: Mapping[str, Any] | None = None,
        shown: str = "",
        where: str = "",
    ) -> None:
        self.dsn = dsn
        self.max_size = max_size
        self.acquire_timeout = acquire_timeout
        self.connect_options = dict(connect_options or {})
        self.shown = shown  # the DSN without its password, for messages
        self.where = where  # HOST:PORT
        self.pooling = Pooling()  # what `dsn` reaches (`behind`): PostgreSQL itself, or a pooler
        self.sessions = Sessions(self.pooling)  # where session() blocks get their connection

    def behind(self, pooling: Pooling) -> Sessions:
        """`dsn` reaches a pooler (`pooler.Pooling`); its `Sessions` (for a pool on `listen_dsn`)."""
        self.pooling, self.sessions = pooling, Sessions(pooling)
        return self.sessions

    # -- asyncpg's pool hooks -----------------------------------------------------------------

    async def init(self, connection: asyncpg.Connection) -> None:
        """Pool `init`: jsonb always; the pgvector types once the database has them."""
        await register_jsonb(connection)
        await self.set_vector_codecs(_direct(connection))

    async def reset(self, connection: asyncpg.Connection) -> None:
        """Pool `reset`: `RESET ALL`, advisory locks, `CLOSE ALL`, `UNLISTEN *` and `DISCARD TEMP`
        (a temporary table would shadow pgstash's table of its name for the next user) for a
        connection that ran the caller's SQL or a session; nothing for one that ran only
        pgstash's own."""
        direct = connection if isinstance(connection, PgstashConnection) else _direct(connection)
        if not direct.callers:  # asyncpg passes its connection (not a proxy): no lookup, every release
            return
        direct.callers = False
        reset = connection.get_reset_query() + _DISCARD_TEMP  # asyncpg's reset, then pgstash's
        await self.quietly(direct, Statement("reset", "execute", reset, ()))

    # -- decisions during use -----------------------------------------------------------------

    @staticmethod
    def ran_callers_sql(connection: asyncpg.Connection) -> None:
        """The caller's SQL (or a session) ran on `connection`: reset it in full on release."""
        _direct(connection).callers = True

    @staticmethod
    def failed(connection: asyncpg.Connection, error: BaseException) -> None:
        """After `error`: a connection left in an unknown protocol state is terminated."""
        if lost(error) and not connection.is_closed():
            connection.terminate()

    async def codecs_were_missing(self, connection: asyncpg.Connection, error: BaseException) -> bool:
        """Whether `error` is an argument asyncpg could not encode (nothing was sent) on a
        connection without pgstash's vector codecs, and the database has the `vector` type now
        (the codecs are then set): the statement may be sent again. Off the hot path."""
        if not isinstance(error, asyncpg.DataError) or error.severity is not None:
            return False  # not an encoding failure: the server sent it (severity is set)
        direct = _direct(connection)
        return not direct.vector_codecs and await self.set_vector_codecs(direct)

    async def set_vector_codecs(self, connection: PgstashConnection) -> bool:
        """Sets pgvector's codecs on `connection` if the server's catalogue has the types."""
        found = await register_vector_codecs(connection, lambda: self.quietly(connection, _VECTOR_TYPES))
        connection.vector_codecs = connection.vector_codecs or found
        return found

    async def quietly(self, connection: asyncpg.Connection, statement: Statement) -> Any:
        """Runs one of the lifecycle's own statements (not logged), errors as pgstash's."""
        try:
            return await call(connection, statement, None, None)
        except Exception as error:
            self.failed(connection, error)
            mapped = classify(statement.name, error)
            if mapped is None:
                raise
            raise mapped from error

    # -- acquire and release ------------------------------------------------------------------

    async def acquire(self, pool: asyncpg.Pool, name: str) -> tuple[PgstashConnection, Any]:
        """A connection from `pool` (the primary's or a replica's) and its pool proxy, to release
        it, found open before anything is sent on it; failing to get one raises `DatabaseError`
        naming `name`. One coroutine frame when a connection is free (the usual path)."""
        for _ in range(self.max_size + 1):
            try:
                # `await pool.acquire()`, timed only when it waits (a free connection is taken
                # without yielding: asyncio.timeout would cost ~4 us for nothing; acquire(timeout=)
                # is wait_for on Python 3.11, a task per call)
                steps = pool.acquire().__await__()
                try:
                    waiting_on = steps.send(None)
                except StopIteration as done:
                    proxy = done.value
                else:
                    async with asyncio.timeout(self.acquire_timeout):
                        proxy = await _Resumed(steps, waiting_on)
            except ConnectTimeout as error:
                raise DatabaseError(name, "08001", str(error)) from None
            except TimeoutError:
                raise DatabaseError(
                    name,
                    None,
                    f"the pool is exhausted: all {self.max_size} connections (max_size) stayed in "
                    f"use for {self.acquire_timeout:g} s (acquire_timeout)",
                ) from None
            except OSError as error:
                message = f"cannot connect to PostgreSQL at {self.shown}: {error}"
                raise DatabaseError(name, "08001", message) from None
            except Exception as error:
                mapped = classify(name, error)
                if mapped is None:
                    raise
                raise mapped from error
            connection: PgstashConnection = proxy.direct()
            idle = _idle(connection)
            if idle or (idle is None and await _settled(connection)):  # readable: asyncpg reads it
                return connection, proxy
            await self.release(pool, proxy, name)  # released: asyncpg puts its slot back
            logger.warning("query %s: a pooled connection had closed; nothing was sent, using another", name)
        raise DatabaseError(name, "08006", "every pooled connection was found closed")

    @staticmethod
    async def release(pool: asyncpg.Pool, proxy: Any, name: str) -> None:
        try:
            await pool.release(proxy)
        except Exception as error:  # asyncpg terminated it; the statement's outcome stands
            Lifecycle.dropped(name, error)

    @staticmethod
    def dropped(name: str, error: Exception) -> None:  # releasing it raised: asyncpg terminated it
        logger.warning("query %s: connection dropped on release (%s)", name, error)

    async def connect(self, dsn: str | None = None, **options: Any) -> PgstashConnection:
        """A new connection to `dsn` (the primary's when None, or a replica's) outside any pool
        (LISTEN, which must not hold a pooled one, to `listen_dsn` when given; a replica's monitor)."""
        dsn = dsn or self.pooling.listen_dsn or self.dsn
        try:
            connection: PgstashConnection = await asyncpg.connect(
                dsn, connection_class=PgstashConnection, **{**self.connect_options, **options}
            )
        except TimeoutError:
            seconds = options.get("timeout", self.connect_options.get("timeout"))
            where = self.where if dsn == self.dsn else "a replica"
            message = f"timed out after {seconds} s connecting to {where}"
            raise DatabaseError("connect", "08001", message) from None
        except Exception as error:
            mapped = classify("connect", error)
            if mapped is None:
                raise
            raise mapped from None
        return connection


class _Resumed:
    """The rest of a coroutine that yielded `waiting_on` (the future it waits for) when first
    stepped: awaiting this yields that future to the task, then delegates to the coroutine, so
    the task's wake-ups, results and cancellations (the timeout's) reach it as if awaited."""

    def __init__(self, steps: Any, waiting_on: Any) -> None:
        self._steps, self._waiting_on = steps, waiting_on

    def __await__(self) -> Any:
        steps, waiting_on = self._steps, self._waiting_on
        while True:
            try:
                yield waiting_on
            except BaseException as error:  # the task threw into it (a cancellation): pass it on
                try:
                    waiting_on = steps.throw(error)
                except StopIteration as done:
                    return done.value
                continue
            return (yield from steps)


def _direct(connection: Any) -> PgstashConnection:
    """`connection` (or the pool proxy in front of it) as a `PgstashConnection`."""
    direct: PgstashConnection = connection.direct()
    return direct


def _idle(connection: PgstashConnection) -> bool | None:
    """Whether an idle pooled connection is open (True) or closed (False), checked before anything
    is sent on it: a backend that ended while the connection sat in the pool left its goodbye (or
    EOF) on the socket, unread. One poll(0) per acquire; None when the socket is readable (then
    `_settled` lets asyncpg read it)."""
    if connection.is_closed():
        return False
    poller = connection.poller
    if poller is None:
        sock = connection.socket
        if sock is None:
            return True
        poller = connection.poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
    return None if poller.poll(0) else True


async def _settled(connection: PgstashConnection) -> bool:
    """Whether a connection whose idle socket was readable is open once asyncpg has read it."""
    for _ in range(4):
        await asyncio.sleep(0)
        if connection.is_closed():
            return False
    return True
