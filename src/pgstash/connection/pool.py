"""Opening and closing the pool: the DSN (and its redaction in every message), connect and
acquire timeouts, and asyncpg's pool hooks, which `lifecycle` provides (codecs, liveness, reset)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import asyncpg

from pgstash.connection.driver import ConnectTimeout
from pgstash.connection.facade import CURRENT, Postgres, logger
from pgstash.connection.lifecycle import PgstashConnection
from pgstash.connection.pooler import Pooling
from pgstash.connection.replicas import Replicas
from pgstash.connection.standby import Replica
from pgstash.errors import ConfigurationError

__all__ = [
    "DSN_VARIABLE", "SCAN_SETTINGS", "ConnectTimeout", "PostgresConnectionPool", "address", "redact",
]  # fmt: skip

DSN_VARIABLE = "PGSTASH_DSN"
# pgvector's iterative index scans, set once per connection (asyncpg server_settings, under the
# caller's own: the caller wins): a filtered, many-candidate or IVFFlat search then needs no
# statement of its own to turn them on (pgstash.vectors.search.planning). Sent at connect, they are the
# session's reset values: RESET ALL and the pool's reset keep them (pgvector before 0.8 has no such
# settings and ignores them). The caller's own SQL on the pool's connections iterates too
# (docs/reliability.md).
# plan_cache_mode = auto (the server's default) at connect too: a database or role set to
# force_generic_plan would otherwise give the filtered vector statements the generic plan their
# gate (`vectors_scan_gate`) exists to avoid (issue 17 item 9); auto re-plans nothing else.
# Behind a pooler none is sent (`pooler.Pooling.server_settings`): the gate sets the scans itself.
SCAN_SETTINGS = {
    "hnsw.iterative_scan": "strict_order",
    "ivfflat.iterative_scan": "relaxed_order",
    "plan_cache_mode": "auto",
}
_PASSWORD_PARAMETER = re.compile(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)")


def redact(dsn: str) -> str:
    """The DSN without its password, in every form: URL userinfo (a password may hold `@`, `/`
    or `?`), a `password=` query parameter, a `password=` keyword."""
    head, separator, rest = dsn.partition("://")
    if separator:
        authority = rest.partition("?")[0]
        at = authority.rfind("@")
        if at < 0:
            at = rest.rfind("@")  # a password holding "?"
        if at >= 0:
            user, colon, _ = rest[:at].partition(":")
            if colon:
                rest = f"{user}:***{rest[at:]}"
        dsn = head + separator + rest
    return _PASSWORD_PARAMETER.sub(r"\1***", dsn)


def address(dsn: str, options: dict[str, Any]) -> str:
    """HOST:PORT the pool connects to, for messages."""
    try:
        parts = urlsplit(dsn)
        query = dict(parse_qsl(parts.query))
        host = options.get("host") or query.get("host") or parts.hostname or "localhost"
        port = options.get("port") or query.get("port") or parts.port or 5432
    except ValueError:
        return "the DSN's host"
    return f"{host}:{port}"


class PostgresConnectionPool:
    """`async with PostgresConnectionPool.of(dsn=...) as postgres:` opens a pool with pgstash's
    codecs and makes it the current one for adapters built without `postgres=`."""

    def __init__(self, dsn: str | None, **options: Any) -> None:
        self._dsn = dsn
        self._options = options
        self._postgres: Postgres | None = None
        self._token: Any = None

    @classmethod
    def of(
        cls,
        dsn: str | None = None,
        *,
        min_size: int = 1,
        max_size: int = 10,
        statement_cache_size: int | None = None,
        command_timeout: float | None = None,
        acquire_timeout: float | None = 30.0,
        connect_timeout: float = 10.0,
        slow_query_threshold: float = 1.0,
        replicas: Sequence[str] = (),
        max_replica_lag: float = 5.0,
        replica_wait: float = 0.25,
        pooler: str | None = None,
        listen_dsn: str | None = None,
        **connect_options: Any,
    ) -> PostgresConnectionPool:
        """`acquire_timeout`: seconds a call waits for a free connection (None: forever);
        `connect_timeout`: seconds to open one; `command_timeout`: seconds a statement may run.
        `replicas`: DSNs of hot standbys of `dsn`'s server that serve reads (each with a pool of
        the same sizes, opening its connections on first use); a replica lagging more than
        `max_replica_lag` seconds is skipped; a read waits at most `replica_wait` seconds for a
        replica to replay this pool's last write, else runs on the primary.
        `pooler`: what `dsn` (and `replicas`) reach when not PostgreSQL itself,
        "pgbouncer-transaction" (PgBouncer, Supavisor, Neon's pooler in transaction mode; RDS
        Proxy) or "pgbouncer-session"; None: `PGSTASH_POOLER`, else direct. `listen_dsn`: a direct
        or session-mode DSN of the database, for what needs a session behind a transaction pooler
        (the cache listener, `session()`). `statement_cache_size`: 100, or 0 behind a transaction
        pooler. docs/deployment.md says what changes."""
        pooling = Pooling.of(pooler, listen_dsn)
        if isinstance(replicas, str):
            raise TypeError("replicas is a sequence of DSNs, not one DSN: replicas=[dsn]")
        if "connection_class" in connect_options:  # pgstash keeps its state on its own class
            raise TypeError("connection_class is pgstash's own (PgstashConnection); drop the argument")
        for name, value in (("max_replica_lag", max_replica_lag), ("replica_wait", replica_wait)):
            if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        return cls(
            dsn,
            min_size=min_size,
            max_size=max_size,
            statement_cache_size=pooling.statement_cache_size(statement_cache_size),
            command_timeout=command_timeout,
            acquire_timeout=acquire_timeout,
            connect_timeout=connect_timeout,
            slow_query_threshold=slow_query_threshold,
            connect_options=connect_options,
            replicas=tuple(replicas),
            max_replica_lag=float(max_replica_lag),
            replica_wait=float(replica_wait),
            pooling=pooling,
        )

    async def open(self) -> Postgres:
        """Opens the pool (outside `async with`; close it with `close()`)."""
        dsn = self._dsn or os.environ.get(DSN_VARIABLE)
        if not dsn:
            raise ConfigurationError(
                f"no PostgreSQL DSN: pass dsn= to PostgresConnectionPool.of() or set {DSN_VARIABLE} "
                "(for example postgresql://user:password@localhost:5432/db)"
            )
        options = dict(self._options)
        replica_dsns: tuple[str, ...] = options.pop("replicas")
        max_lag: float = options.pop("max_replica_lag")
        wait: float = options.pop("replica_wait")
        connect_options: dict[str, Any] = options.pop("connect_options")
        pooling: Pooling = options.pop("pooling")
        connect_options = {
            **connect_options,
            "server_settings": pooling.server_settings(SCAN_SETTINGS, connect_options.get("server_settings")),
        }
        connect_timeout: float = options.pop("connect_timeout")
        per_connection = {
            "statement_cache_size": options.pop("statement_cache_size"),
            "command_timeout": options.pop("command_timeout"),
            "timeout": connect_timeout,
            **connect_options,
        }
        where = address(dsn, connect_options)
        postgres = Postgres(
            dsn=dsn,
            slow_query_threshold=options.pop("slow_query_threshold"),
            acquire_timeout=options.pop("acquire_timeout"),
            max_size=options["max_size"],
            connect_options=per_connection,
            shown=redact(dsn),
            where=where,
        )
        sessions = postgres.lifecycle.behind(pooling)

        def connector(dsn: str) -> Any:
            where = address(dsn, connect_options)

            async def connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
                try:
                    connection: asyncpg.Connection = await asyncpg.connect(*args, **kwargs)
                except TimeoutError:
                    message = f"timed out after {connect_timeout:g} s connecting to {where}"
                    raise ConnectTimeout(message) from None
                except (ValueError, asyncpg.ClientConfigurationError):
                    # the driver's message may quote the password: neither chained nor repeated
                    raise ConfigurationError(
                        f"cannot parse the PostgreSQL DSN {redact(dsn)}: percent-encode the characters "
                        "@ / ? # : in the user name and password"
                    ) from None
                return connection

            return connect

        def create_pool(dsn: str, **sizes: Any) -> Any:
            return asyncpg.create_pool(
                dsn,
                connect=connector(dsn),
                connection_class=PgstashConnection,
                init=postgres.lifecycle.init,
                setup=postgres.lifecycle.setup,
                reset=postgres.lifecycle.reset,
                **{**options, **sizes},
                **per_connection,
            )

        try:
            pool: asyncpg.Pool = await create_pool(dsn)
        except OSError as error:
            raise ConfigurationError(
                f"cannot reach PostgreSQL at {redact(dsn)}: {error}. Check the host and port in the "
                f"DSN, that the server is running, or leave {DSN_VARIABLE} unset to use the embedded server"
            ) from error
        except asyncpg.InvalidAuthorizationSpecificationError as error:
            raise ConfigurationError(f"PostgreSQL at {redact(dsn)} refused the login: {error}") from error
        except asyncpg.InvalidCatalogNameError as error:
            raise ConfigurationError(
                f"PostgreSQL at {redact(dsn)}: {error}; create the database first (createdb)"
            ) from error
        except asyncpg.PostgresError as error:
            hint = pooling.refused(error)  # a pooler that refuses pgstash's startup parameters
            raise ConfigurationError(f"PostgreSQL at {redact(dsn)}: {error}{hint}") from error
        postgres.attach(pool)
        if warning := pooling.warning():
            logger.warning(warning)
        if pooling.transaction and pooling.listen_dsn is not None:  # session() blocks connect there
            sessions.attach(await create_pool(pooling.listen_dsn, min_size=0, max_size=2))
            postgres.shared("pgstash.connection.pooler.sessions", lambda _: sessions)  # closed with it
        self._postgres = postgres
        if replica_dsns:
            # a replica's pool connects on first use: a replica down at startup is no error
            replicas = [
                Replica(redact(each), each, await create_pool(each, min_size=0)) for each in replica_dsns
            ]
            postgres.replicas = Replicas(replicas, postgres.scopes, max_lag=max_lag, wait=wait, logger=logger)
            await postgres.replicas.start()
        return postgres

    async def close(self) -> None:
        if self._postgres is not None:
            await self._postgres.close()
            self._postgres = None

    async def __aenter__(self) -> Postgres:
        postgres = await self.open()
        self._token = CURRENT.set(postgres)
        return postgres

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self.close()
        finally:
            if self._token is not None:
                CURRENT.reset(self._token)
                self._token = None
