"""Embedding models that run on this machine, each library imported only when first used.

- `WordLlamaEmbedding` (`pip install "pgstash[embed]"`): a static embedding model whose 256-dim
  weights ship inside the `wordllama` wheel, loaded from there with no network (0.1 s, tens of
  thousands of sentences a second on one core). The default of `pgstash demo` and the CLI.
- `SentenceTransformerEmbedding` and `FastEmbedEmbedding`: the libraries of those names, whose
  models are downloaded by the library on first use (or read from its cache). pgstash does not
  install them; their loading code is tested here against stand-ins only (no model can be had
  offline on the test machine).

Each is a plain callable from a sequence of texts to an `(n, d)` float32 array (sync: pgstash runs
it in a worker thread); pass one as `PostgresVectorIndex(embedding=...)`. `default_embedding()`
is WordLlama when installed, else None.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from numpy.typing import NDArray

from pgstash.errors import ConfigurationError

__all__ = [
    "FastEmbedEmbedding",
    "SentenceTransformerEmbedding",
    "WordLlamaEmbedding",
    "default_embedding",
    "embedding_named",
]

EMBED_HINT = 'pip install "pgstash[embed]"'


def _library(module: str, install: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ConfigurationError(f"this embedding needs {module}: {install}") from error


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("an embedding takes a sequence of texts, not one string")
    return list(texts)


@attrs.define(eq=False)
class _Lazy:
    """A model loaded once, on first use, by whichever thread gets there first."""

    _model: Any = attrs.field(default=None, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def _load(self) -> Any:
        raise NotImplementedError

    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model


@attrs.define(eq=False)
class WordLlamaEmbedding(_Lazy):
    """WordLlama's `l2_supercat` model, loaded offline from the weights in its wheel. `dimension`
    256 is the shipped one (64, 128 and 512 truncate or need a download the machine may not have)."""

    dimension: int = 256
    config: str = "l2_supercat"

    @property
    def name(self) -> str:
        return f"wordllama-{self.config}-{self.dimension}"

    def _load(self) -> Any:
        wordllama = _library("wordllama", EMBED_HINT)
        folder = Path(wordllama.__file__).parent
        try:
            return wordllama.WordLlama.load(
                config=self.config, dim=self.dimension, cache_dir=folder, disable_download=True
            )
        except Exception as error:
            raise ConfigurationError(
                f"WordLlama {self.config} of dimension {self.dimension} is not in {folder} "
                f"(the wheel ships dimension 256): {error}"
            ) from error

    def __call__(self, texts: Sequence[str]) -> NDArray[np.float32]:
        texts = _texts(texts)
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        return np.asarray(self.model().embed(texts, norm=True), dtype=np.float32)


@attrs.define(eq=False)
class SentenceTransformerEmbedding(_Lazy):
    """`sentence_transformers.SentenceTransformer(model)`, normalised. `pip install
    sentence-transformers` (it brings torch); the model is downloaded on first use."""

    model_name: str = "sentence-transformers/all-MiniLM-L6-v2"
    options: dict[str, Any] = attrs.field(factory=dict)

    @property
    def name(self) -> str:
        return f"sentence-transformers-{self.model_name}"

    def _load(self) -> Any:
        library = _library("sentence_transformers", "pip install sentence-transformers")
        return library.SentenceTransformer(self.model_name, **self.options)

    def __call__(self, texts: Sequence[str]) -> NDArray[np.float32]:
        encoded = self.model().encode(_texts(texts), normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(encoded, dtype=np.float32)


@attrs.define(eq=False)
class FastEmbedEmbedding(_Lazy):
    """`fastembed.TextEmbedding(model)` (ONNX, no torch). `pip install fastembed`; the model is
    downloaded on first use."""

    model_name: str = "BAAI/bge-small-en-v1.5"
    options: dict[str, Any] = attrs.field(factory=dict)

    @property
    def name(self) -> str:
        return f"fastembed-{self.model_name}"

    def _load(self) -> Any:
        library = _library("fastembed", "pip install fastembed")
        return library.TextEmbedding(model_name=self.model_name, **self.options)

    def __call__(self, texts: Sequence[str]) -> NDArray[np.float32]:
        rows = list(self.model().embed(_texts(texts)))
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)


def wordllama_installed() -> bool:
    return importlib.util.find_spec("wordllama") is not None


def default_embedding() -> WordLlamaEmbedding | None:
    """WordLlama (256 dimensions) when `pgstash[embed]` is installed, else None."""
    return WordLlamaEmbedding() if wordllama_installed() else None


def embedding_named(name: str) -> Any:
    """The embedding a vector table's rows were ingested with, from its recorded name
    (`wordllama-l2_supercat-256`, `hashing-384`); ConfigurationError when it cannot be had."""
    from pgstash.embeddings import HashingEmbedding

    kind, _, rest = name.partition("-")
    if kind == "hashing" and rest.isdigit():
        return HashingEmbedding(int(rest))
    if kind == "wordllama":
        config, _, dimension = rest.rpartition("-")
        if config and dimension.isdigit():
            if not wordllama_installed():
                raise ConfigurationError(f"the table's rows were embedded with WordLlama: {EMBED_HINT}")
            return WordLlamaEmbedding(int(dimension), config)
    raise ConfigurationError(
        f"the table's rows were embedded with {name!r}, which the command line cannot run: "
        "search it with --vector FILE or --mode text"
    )
