"""OpenTelemetry spans (the `pgstash[otel]` extra): one CLIENT span per statement pgstash sends,
named after it (its query's name: `configurations_newest`; `sql` for the caller's own SQL), with
`db.system` = "postgresql", `db.operation.name` = the name and `db.response.returned_rows`. Never a
bind value nor an error's message (either may hold the caller's data): a failed statement's span
has status ERROR, `error.type` and `db.response.status_code` (the SQLSTATE).

The facade imports this module only when opentelemetry is installed (`import pgstash` loads none
of it), and traces only when a tracer provider is configured when the pool opens: without one
every statement goes through the plain `Sender`, at no cost.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from pgstash.connection.driver import rows_of
from pgstash.connection.lifecycle import Lifecycle
from pgstash.connection.sender import Logs, Sender
from pgstash.sql.statements import Statement

__all__ = ["TracingSender", "traced"]


def traced(lifecycle: Lifecycle, logs: Logs) -> Sender | None:
    """A `TracingSender` when the application configured a tracer provider, else None."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return TracingSender(lifecycle, logs, provider.get_tracer("pgstash"))


class TracingSender(Sender):
    """`Sender` with a span around each statement (not around the quiet ones of the pool's own
    bookkeeping, such as the WAL position read after a commit with replicas)."""

    def __init__(self, lifecycle: Lifecycle, logs: Logs, tracer: Any) -> None:
        super().__init__(lifecycle, logs)
        self._tracer = tracer

    async def send(
        self,
        connection: asyncpg.Connection,
        statement: Statement,
        *,
        extra: Any = None,
        timeout: float | None = None,
        quiet: bool = False,
    ) -> Any:
        if quiet:
            return await super().send(connection, statement, extra=extra, timeout=timeout, quiet=True)
        name = statement.name
        span = self._tracer.start_span(
            name,
            kind=SpanKind.CLIENT,
            attributes={"db.system": "postgresql", "db.operation.name": name},
        )
        try:
            result = await super().send(connection, statement, extra=extra, timeout=timeout)
        except BaseException as error:
            if span.is_recording():
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", type(error).__name__)
                sqlstate = getattr(error, "sqlstate", None)
                if sqlstate:
                    span.set_attribute("db.response.status_code", sqlstate)
            raise
        else:
            if span.is_recording():
                span.set_attribute("db.response.returned_rows", rows_of(statement.kind, result))
            return result
        finally:
            span.end()
