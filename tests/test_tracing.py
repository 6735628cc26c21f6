"""Issue 22 item 2: OpenTelemetry spans (`pgstash[otel]`), read back with the SDK's in-memory
exporter: one span per statement, named after its query, with db.system, db.operation.name and
the row count, and never a bind value."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import attrs
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pgstash import DatabaseError, PostgresConfigurationRepository, PostgresConnectionPool
from pgstash.connection.sender import Sender

SECRET = "s3cret-value-4711"


@attrs.frozen
class Settings:
    token: str = SECRET


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """The application's tracer provider, for this test only (no global set once per process)."""
    provider = TracerProvider()
    exported = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    yield exported
    provider.shutdown()


async def test_each_statement_is_one_span_named_after_its_query_without_bind_values(
    database_dsn: str, exporter: InMemorySpanExporter
) -> None:
    application = trace.get_tracer_provider().get_tracer("the application")
    async with PostgresConnectionPool.of(dsn=database_dsn) as postgres:
        configurations = PostgresConfigurationRepository(postgres, cache_limit=0)
        with application.start_as_current_span("request") as request:
            await configurations.define(Settings())
            assert await configurations.load(Settings) == Settings()
            with pytest.raises(DatabaseError):
                await postgres.fetch_value("SELECT 1 / $1::INTEGER", 0)
    spans = [span for span in exporter.get_finished_spans() if span.name != "request"]
    names = [span.name for span in spans]
    assert "configurations_insert" in names and "configurations_newest" in names
    for span in spans:
        assert span.kind == trace.SpanKind.CLIENT
        assert span.attributes is not None
        assert span.attributes["db.system"] == "postgresql"
        assert span.attributes["db.operation.name"] == span.name
        assert span.parent is not None and span.parent.span_id == request.get_span_context().span_id
        assert SECRET not in repr(dict(span.attributes)) and not span.events
    newest = next(span for span in spans if span.name == "configurations_newest")
    assert newest.attributes is not None and newest.attributes["db.response.returned_rows"] == 1
    failed = spans[-1]
    assert (failed.name, failed.status.status_code) == ("sql", trace.StatusCode.ERROR)
    assert failed.attributes is not None and failed.attributes["db.response.status_code"] == "22012"


async def test_without_a_configured_tracer_provider_statements_are_not_traced(database_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=database_dsn) as postgres:
        assert type(postgres.sender) is Sender  # the plain path: no span, no cost
        assert await postgres.fetch_value("SELECT 1") == 1


@pytest.mark.process
def test_import_pgstash_loads_nothing_of_opentelemetry() -> None:
    code = "import sys, pgstash\nprint(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
