"""`PostgresVectorIndex(*, mmr_multiplier=8)`: draive's `VectorIndex` on pgstash's index, for
both draive generations. Vectors come from draive's `TextEmbedding`/`ImageEmbedding` in scope (as
draive's own adapter); the rows are the seed's columns of the table draive names (`payload` is
the model's `to_json()`, `meta` the embedding's meta), written with one binary COPY."""

from __future__ import annotations

import json
from base64 import b64decode
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from draive import VectorIndex
from draive.embedding import ImageEmbedding, TextEmbedding
from draive.multimodal import TextContent
from draive.resources import ResourceContent

from pgstash.draive.models import requirement_of, state_converter, table_of
from pgstash.draive.pool import current_postgres
from pgstash.vectors import PostgresVectorIndex as _Index

__all__ = ["PostgresVectorIndex"]


def _image(resource: Any) -> bytes:
    if not resource.mime_type.startswith("image"):
        raise ValueError(f"{resource.mime_type} embedding is not supported")
    return b64decode(resource.data)


def _selected(value: Any) -> str | bytes:
    if isinstance(value, str):
        return value
    if isinstance(value, TextContent):
        return str(value.text)
    if isinstance(value, ResourceContent):
        return _image(value)
    raise ValueError(f"{value} embedding is not supported")


async def _embed_many(embedding: Any, values: list[Any], **extra: Any) -> Sequence[Any]:
    many = getattr(embedding, "embed_many", None)
    if many is not None:  # draive 0.103
        result: Sequence[Any] = await many(values, **extra)
        return result
    embedded: Sequence[Any] = await embedding.embed(values, **extra)
    return embedded


async def _query_vector(query: Any) -> Any:
    if isinstance(query, str):
        return (await TextEmbedding.embed(query)).vector
    if isinstance(query, TextContent):
        return (await TextEmbedding.embed(query.text)).vector
    if isinstance(query, ResourceContent):
        if query.mime_type.startswith("image"):
            return (await ImageEmbedding.embed(b64decode(query.data))).vector
        if query.mime_type.startswith("text"):
            return (await TextEmbedding.embed(b64decode(query.data).decode())).vector
        raise ValueError(f"{query.mime_type} embedding is not supported")
    return query  # a vector


def PostgresVectorIndex(*, mmr_multiplier: int = 8) -> Any:
    """draive's `VectorIndex` State on pgstash's `PostgresVectorIndex`, on the scope's pool."""
    if not isinstance(mmr_multiplier, int) or mmr_multiplier < 1:
        raise ValueError(f"mmr_multiplier must be a positive integer, got {mmr_multiplier!r}")
    converter = state_converter()

    def index_on_scope() -> _Index:
        return _Index(current_postgres(), converter=converter, mmr_multiplier=mmr_multiplier)

    async def indexing(
        model: type[Any], /, *, attribute: Callable[[Any], Any] | Any, values: Iterable[Any], **extra: Any
    ) -> None:
        if not callable(attribute):
            raise TypeError(f"Prepare parameter path by using {model.__name__}._.path.to.property")
        items = tuple(values)
        selected = [_selected(attribute(item)) for item in items]
        if not items:
            return
        if all(isinstance(value, str) for value in selected):
            embedded = await _embed_many(TextEmbedding, selected, **extra)
        elif all(isinstance(value, bytes) for value in selected):
            embedded = await _embed_many(ImageEmbedding, selected, **extra)
        else:
            raise ValueError("Selected attribute values have to be the same type")
        vectors = {id(item): each.vector for item, each in zip(items, embedded, strict=True)}
        metas = [json.loads(each.meta.to_json()) for each in embedded]
        await index_on_scope().index(
            model, values=items, attribute=lambda item: vectors[id(item)], meta=metas, table=table_of(model)
        )

    async def searching(
        model: type[Any],
        /,
        *,
        query: Any = None,
        score_threshold: float | None = None,
        requirements: Any = None,
        limit: int | None = None,
        rerank: bool = False,
        **extra: Any,
    ) -> Sequence[Any]:
        if query is None and score_threshold is not None:
            raise ValueError("score_threshold needs a query")
        vector = None if query is None else await _query_vector(query)
        found: Sequence[Any] = await index_on_scope().search(
            model,
            query=vector,
            limit=limit or 8,
            score_threshold=score_threshold,
            requirements=requirement_of(requirements),
            rerank=rerank and vector is not None,
            table=table_of(model),
        )
        return tuple(found)

    async def deleting(model: type[Any], /, *, requirements: Any = None, **extra: Any) -> None:
        translated = requirement_of(requirements)
        await index_on_scope().delete(
            model, requirements=translated, everything=translated is None, table=table_of(model)
        )

    return VectorIndex(indexing=indexing, searching=searching, deleting=deleting)
