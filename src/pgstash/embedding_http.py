"""`OpenAIEmbedding`: any OpenAI-compatible `POST {base_url}/embeddings` endpoint (OpenAI, Azure's
compatible route, vLLM, Ollama, LiteLLM, text-embeddings-inference...), with `httpx`
(`pip install "pgstash[embed]"`), imported on first use.

Texts go `batch_size` to a request. A 429 or 5xx answer, a timeout or a refused connection is
retried up to `retries` times, waiting `backoff * 2**attempt` seconds (or the server's
`Retry-After`, at most 60 s): embedding a text twice is harmless. Any other answer raises
`EmbeddingRequestError` with the status and the start of the body, never the key.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from numpy.typing import NDArray

from pgstash.errors import ConfigurationError, PgstashError

__all__ = ["EmbeddingRequestError", "OpenAIEmbedding"]

RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504})


class EmbeddingRequestError(PgstashError):
    """The embedding endpoint refused the request, or kept failing after every retry."""


def _httpx() -> Any:
    try:
        return importlib.import_module("httpx")
    except ImportError as error:
        raise ConfigurationError('OpenAIEmbedding needs httpx: pip install "pgstash[embed]"') from error


@attrs.define(eq=False)
class OpenAIEmbedding:
    """`await OpenAIEmbedding("text-embedding-3-small")(texts)`: an `(n, d)` float32 array.
    `api_key` defaults to `OPENAI_API_KEY` (none is sent when neither is set: local servers);
    `dimensions` asks models that can shorten their vectors for that many."""

    model: str
    base_url: str = attrs.field(default="https://api.openai.com/v1", kw_only=True)
    api_key: str | None = attrs.field(default=None, kw_only=True, repr=False)
    dimensions: int | None = attrs.field(default=None, kw_only=True)
    batch_size: int = attrs.field(default=256, kw_only=True)
    retries: int = attrs.field(default=5, kw_only=True)
    backoff: float = attrs.field(default=0.5, kw_only=True)
    timeout: float = attrs.field(default=60.0, kw_only=True)

    @property
    def name(self) -> str:
        return f"openai-{self.model}"

    def _headers(self) -> dict[str, str]:
        key = self.api_key if self.api_key is not None else os.environ.get("OPENAI_API_KEY")
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def __call__(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if isinstance(texts, str):
            raise TypeError("an embedding takes a sequence of texts, not one string")
        texts = list(texts)
        httpx = _httpx()
        rows: list[list[float]] = []
        async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers()) as client:
            for start in range(0, len(texts), self.batch_size):
                rows += await self._request(client, httpx, texts[start : start + self.batch_size])
        if not rows:
            return np.empty((0, self.dimensions or 0), dtype=np.float32)
        return np.asarray(rows, dtype=np.float32)

    async def _request(self, client: Any, httpx: Any, batch: list[str]) -> list[list[float]]:
        body: dict[str, Any] = {"model": self.model, "input": batch}
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        url = self.base_url.rstrip("/") + "/embeddings"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = await client.post(url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as error:
                if last:
                    raise EmbeddingRequestError(
                        f"{url}: {type(error).__name__} after {attempt + 1} attempts"
                    ) from error
                await asyncio.sleep(self._wait(attempt, None))
                continue
            if response.status_code in RETRYABLE and not last:
                await asyncio.sleep(self._wait(attempt, response.headers.get("retry-after")))
                continue
            if response.status_code != 200:
                raise EmbeddingRequestError(
                    f"{url} answered {response.status_code} after {attempt + 1} attempt(s): "
                    f"{response.text[:200]}"
                )
            return self._rows(response.json(), len(batch), url)
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(60.0, max(0.0, float(retry_after)))
            except ValueError:
                pass
        return float(min(60.0, self.backoff * 2**attempt))

    @staticmethod
    def _rows(answer: Any, expected: int, url: str) -> list[list[float]]:
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or len(data) != expected:
            raise EmbeddingRequestError(
                f"{url}: expected {expected} embeddings in 'data', got {answer!r:.200}"
            )
        ordered = sorted(data, key=lambda item: item.get("index", 0))
        return [item["embedding"] for item in ordered]
