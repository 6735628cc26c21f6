"""Opening and closing the pool: the DSN (and its redaction in every message), connect and
acquire timeouts, and the per-connection hooks the executor provides (codecs, reset)."""

from __future__ import annotations

import os
import re
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import asyncpg

from pgstash.connection.executor import ConnectTimeout, Postgres
from pgstash.connection.scope import CURRENT
from pgstash.errors import ConfigurationError

__all__ = ["DSN_VARIABLE", "ConnectTimeout", "PostgresConnectionPool", "address", "redact"]

DSN_VARIABLE = "PGSTASH_DSN"
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
        statement_cache_size: int = 100,
        command_timeout: float | None = None,
        acquire_timeout: float | None = 30.0,
        connect_timeout: float = 10.0,
        slow_query_threshold: float = 1.0,
        **connect_options: Any,
    ) -> PostgresConnectionPool:
        """`acquire_timeout`: seconds a call waits for a free connection (None: forever);
        `connect_timeout`: seconds to open one; `command_timeout`: seconds a statement may run."""
        return cls(
            dsn,
            min_size=min_size,
            max_size=max_size,
            statement_cache_size=statement_cache_size,
            command_timeout=command_timeout,
            acquire_timeout=acquire_timeout,
            connect_timeout=connect_timeout,
            slow_query_threshold=slow_query_threshold,
            connect_options=connect_options,
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
        connect_options: dict[str, Any] = options.pop("connect_options")
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

        async def connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
            try:
                connection: asyncpg.Connection = await asyncpg.connect(*args, **kwargs)
            except TimeoutError:
                raise ConnectTimeout(f"timed out after {connect_timeout:g} s connecting to {where}") from None
            except (ValueError, asyncpg.ClientConfigurationError):
                # the driver's message may quote the password: neither chained nor repeated
                raise ConfigurationError(
                    f"cannot parse the PostgreSQL DSN {redact(dsn)}: percent-encode the characters "
                    "@ / ? # : in the user name and password"
                ) from None
            return connection

        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                dsn,
                connect=connect,
                init=postgres.setup_connection,
                reset=postgres.reset_connection,
                **options,
                **per_connection,
            )
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
            raise ConfigurationError(f"PostgreSQL at {redact(dsn)}: {error}") from error
        postgres.attach(pool)
        self._postgres = postgres
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
