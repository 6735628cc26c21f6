"""The embedding contract and its adapters: sync and async callables, batches, a fixed dimension,
WordLlama offline, the OpenAI-compatible adapter against a local HTTP server, the lazily imported
sentence-transformers/fastembed adapters against stand-ins, and search by meaning on a labelled
set (WordLlama finds every paraphrase in its top 3, HashingEmbedding does not)."""

from __future__ import annotations

import json
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attrs
import numpy as np
import pytest

from pgstash import DimensionMismatchError, HashingEmbedding, PostgresVectorIndex
from pgstash.connection import Postgres
from pgstash.embedding_http import EmbeddingRequestError, OpenAIEmbedding
from pgstash.embedding_models import FastEmbedEmbedding, SentenceTransformerEmbedding, WordLlamaEmbedding
from pgstash.embeddings import as_embedding


def sync_encode(texts: Sequence[str]) -> np.ndarray:
    """Like sentence-transformers' encode: a plain function returning a numpy array."""
    return np.array([[len(t), 1.0, 0.5] for t in texts], dtype=np.float32)


async def test_a_sync_callable_is_an_embedding() -> None:
    embedder = as_embedding(sync_encode, batch_size=2)
    assert embedder.dimension is None
    found = await embedder(["a", "bb", "ccc", "dddd", "e"])
    assert found.shape == (5, 3) and found[:, 0].tolist() == [1, 2, 3, 4, 1]
    assert embedder.dimension == 3


async def test_batches_stay_within_size_and_concurrency_and_keep_order() -> None:
    sizes: list[int] = []
    active = [0, 0]  # now, most

    async def slow(texts: Sequence[str]) -> list[list[float]]:
        import asyncio

        active[0] += 1
        active[1] = max(active[1], active[0])
        sizes.append(len(texts))
        await asyncio.sleep(0)
        active[0] -= 1
        return [[float(t), 1.0] for t in texts]

    embedder = as_embedding(slow, batch_size=3, concurrency=2)
    found = await embedder([str(i) for i in range(10)])
    assert found[:, 0].tolist() == list(range(10))
    assert sizes == [3, 3, 3, 1] and active[1] <= 2


async def test_a_later_result_of_another_dimension_is_refused() -> None:
    widths = iter([3, 4])
    embedder = as_embedding(lambda texts: np.ones((len(texts), next(widths))))
    await embedder(["a"])
    with pytest.raises(DimensionMismatchError, match="expected vectors of dimension 3, got 4"):
        await embedder(["b"])


@attrs.frozen
class Note:
    key: str
    text: str


async def test_the_index_takes_a_sync_embedding(postgres: Postgres) -> None:
    index = PostgresVectorIndex(embedding=sync_encode)
    await index.create_table(Note, dimension=3, index=None)
    assert await index.index(Note, values=[Note("a", "x"), Note("b", "yyyy")], attribute="text") == 2
    assert (await index.search(Note, query="zzzz", limit=1))[0].key == "b"


def test_wordllama_loads_offline_with_256_dimensions() -> None:
    vectors = WordLlamaEmbedding()(["cat on a mat", "kitten on a rug", "quarterly tax filing deadline"])
    assert vectors.shape == (3, 256)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > 0.3 and unrelated < 0.1


PASSAGES = {
    "gzip": "Compress and decompress data in the gzip file format.",
    "csv": "Read and write tabular data as comma-separated values.",
    "sleep": "Suspend execution of the calling thread for the given number of seconds.",
    "random": "Return a random floating point number in the range from zero to one.",
    "socket": "Open a network connection to a remote host and port.",
    "sqlite": "Execute an SQL statement against the database and return a cursor.",
    "email": "Send an electronic mail message through an SMTP server.",
    "hash": "Compute a cryptographic digest of the given bytes.",
    "date": "Return the current local date and time.",
    "sort": "Return a new list containing all items in ascending order.",
    "json": "Serialize an object to a JSON formatted string.",
    "remove": "Delete the file at the given path from the disk.",
}
PARAPHRASES = {
    "gzip": "shrink files so they take less space",
    "csv": "spreadsheet rows in a text file",
    "sleep": "pause the program for a while",
    "random": "pick an unpredictable fraction",
    "socket": "talk to a server over the internet",
    "sqlite": "run a query on tables",
    "email": "mail someone a letter electronically",
    "hash": "fingerprint a blob securely",
    "date": "what time is it now",
    "sort": "arrange elements from smallest to largest",
    "json": "convert a dictionary into text for a web API",
    "remove": "erase a document from storage",
}


async def top3_hits(postgres: Postgres, embedding: object, dimension: int, table: str) -> int:
    index = PostgresVectorIndex(embedding=embedding)
    await index.create_table(Note, dimension=dimension, table=table)
    notes = [Note(key, text) for key, text in PASSAGES.items()]
    await index.index(Note, values=notes, attribute="text", table=table)
    hits = 0
    for key, query in PARAPHRASES.items():
        found = await index.search(Note, query=query, limit=3, table=table)
        hits += key in [note.key for note in found]
    return hits


async def test_the_demo_embedding_finds_passages_by_meaning_and_hashing_does_not(postgres: Postgres) -> None:
    assert await top3_hits(postgres, WordLlamaEmbedding(), 256, "meaning_wordllama") == len(PARAPHRASES)
    assert await top3_hits(postgres, HashingEmbedding(256), 256, "meaning_hashing") <= len(PARAPHRASES) - 4


class Endpoint(BaseHTTPRequestHandler):
    """An OpenAI-compatible /embeddings: fails `failures` times with `status`, then answers."""

    failures = 0
    status = 429
    requests: list[dict[str, object]] = []  # noqa: RUF012
    headers_seen: list[str] = []  # noqa: RUF012

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        type(self).headers_seen.append(self.headers.get("Authorization", ""))
        if type(self).failures > 0:
            type(self).failures -= 1
            self.send_response(type(self).status)
            self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(b'{"error": "busy"}')
            return
        data = [{"index": i, "embedding": [float(len(t)), 1.0]} for i, t in enumerate(body["input"])]
        answer = json.dumps({"data": list(reversed(data))}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    Endpoint.failures, Endpoint.status, Endpoint.requests, Endpoint.headers_seen = 0, 429, [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()


async def test_openai_adapter_batches_and_orders_by_index(endpoint: str) -> None:
    embedding = OpenAIEmbedding("m", base_url=endpoint, api_key="secret-key", batch_size=2)
    found = await embedding(["a", "bb", "ccc"])
    assert found[:, 0].tolist() == [1, 2, 3]
    assert [r["input"] for r in Endpoint.requests] == [["a", "bb"], ["ccc"]]
    assert Endpoint.headers_seen[0] == "Bearer secret-key"


@pytest.mark.parametrize("status", [429, 503])
async def test_openai_adapter_retries_429_and_5xx(endpoint: str, status: int) -> None:
    Endpoint.failures, Endpoint.status = 2, status
    found = await OpenAIEmbedding("m", base_url=endpoint, backoff=0.0)(["abcd"])
    assert found.tolist() == [[4.0, 1.0]] and len(Endpoint.requests) == 3


async def test_openai_adapter_gives_up_and_names_the_status_never_the_key(endpoint: str) -> None:
    Endpoint.failures, Endpoint.status = 10, 401
    with pytest.raises(EmbeddingRequestError, match="answered 401") as caught:
        await OpenAIEmbedding("m", base_url=endpoint, api_key="secret-key", backoff=0.0)(["a"])
    assert "secret-key" not in str(caught.value) and len(Endpoint.requests) == 1
    Endpoint.failures, Endpoint.status, Endpoint.requests = 10, 500, []
    with pytest.raises(EmbeddingRequestError, match="answered 500 after 3 attempt"):
        await OpenAIEmbedding("m", base_url=endpoint, retries=2, backoff=0.0)(["a"])


def stand_in(monkeypatch: pytest.MonkeyPatch, name: str, **members: object) -> None:
    module = types.ModuleType(name)
    for key, value in members.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)


def test_sentence_transformers_and_fastembed_load_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    """Their loading code against stand-ins: no model of either can be had offline here."""
    loaded: list[str] = []

    class SentenceTransformer:
        def __init__(self, name: str) -> None:
            loaded.append(name)

        def encode(self, texts: list[str], **options: object) -> np.ndarray:
            assert options == {"normalize_embeddings": True, "convert_to_numpy": True}
            return np.ones((len(texts), 4))

    class TextEmbedding:
        def __init__(self, model_name: str) -> None:
            loaded.append(model_name)

        def embed(self, texts: list[str]) -> Iterator[np.ndarray]:
            return (np.ones(5) for _ in texts)

    stand_in(monkeypatch, "sentence_transformers", SentenceTransformer=SentenceTransformer)
    stand_in(monkeypatch, "fastembed", TextEmbedding=TextEmbedding)
    sentence = SentenceTransformerEmbedding("st-model")
    fast = FastEmbedEmbedding("fe-model")
    assert loaded == []  # nothing loads before the first call
    assert sentence(["a", "b"]).shape == (2, 4) and fast(["a"]).shape == (1, 5)
    sentence(["c"])
    assert loaded == ["st-model", "fe-model"]  # once each


def test_import_pgstash_loads_no_embedding_library() -> None:
    import subprocess

    script = (
        "import sys, pgstash\n"
        "heavy = ('wordllama', 'httpx', 'sentence_transformers', 'fastembed', 'pgstash.embedding_models',"
        " 'pgstash.embedding_http')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
