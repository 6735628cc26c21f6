"""Documents as chunk sets (`index(..., document=...)`, `delete(documents=...)`) and reading rows
back (`get(keys=|ids=)`, `page(...)`)."""

from __future__ import annotations

import asyncio
import uuid

import attrs
import pytest

from pgstash import AttributeRequirement, ConfigurationError, Page, Postgres, PostgresVectorIndex
from tests.support.vectors import unit_rows

R = AttributeRequirement


@attrs.frozen
class Piece:
    doc: str
    position: int
    text: str
    lang: str = "en"


def pieces(doc: str, count: int, version: int = 1) -> list[Piece]:
    return [Piece(doc, i, f"{doc} chunk {i} v{version}") for i in range(count)]


async def write(store: PostgresVectorIndex, values: list[Piece], **options: object) -> int:
    vectors = unit_rows(len(values), 8, seed=len(values))
    by_text = {value.text: vector for value, vector in zip(values, vectors, strict=True)}
    return await store.index(Piece, values=values, attribute=lambda value: by_text[value.text], **options)  # type: ignore[arg-type]


async def rows_of(postgres: Postgres, doc: str) -> list[str]:
    rows = await postgres.fetch(
        "SELECT payload->>'text' AS text FROM piece WHERE document = $1 ORDER BY (payload->>'position')::int",
        f'"{doc}"',
    )
    return [row["text"] for row in rows]


async def test_a_document_that_shrinks_from_12_chunks_to_9_leaves_9(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Piece, dimension=8, documents=True)
    assert await write(store, pieces("a", 12) + pieces("b", 3), document="doc") == 15
    assert await write(store, pieces("a", 9, version=2), document="doc") == 9
    assert await rows_of(postgres, "a") == [f"a chunk {i} v2" for i in range(9)]
    assert len(await rows_of(postgres, "b")) == 3  # a document not named is left as it was
    assert await postgres.fetch_value("SELECT count(*) FROM piece") == 12
    # a callable names the document too, and a second run changes nothing
    for _ in range(2):
        await write(store, pieces("b", 2, version=3), document=lambda piece: piece.doc)
    assert await rows_of(postgres, "b") == ["b chunk 0 v3", "b chunk 1 v3"]
    assert await store.delete(Piece, documents=["a", "missing"]) == 9
    assert await postgres.fetch_value("SELECT count(*) FROM piece") == 2


async def test_concurrent_rewrites_of_one_document_leave_one_whole_set(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Piece, dimension=8, index=None, documents=True)
    await asyncio.gather(*(write(store, pieces("a", 5 + n, version=n), document="doc") for n in range(4)))
    texts = await rows_of(postgres, "a")
    versions = {text.rsplit(" v", 1)[1] for text in texts}
    assert len(versions) == 1 and len(texts) == 5 + int(versions.pop())


async def test_document_input_is_checked_before_anything_is_written(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Piece, dimension=8, documents=True)
    with pytest.raises(ValueError, match="not both"):
        await write(store, pieces("a", 2), document="doc", key="text")
    with pytest.raises(TypeError, match="str or an int"):
        await write(store, pieces("a", 2), document=lambda piece: 1.5)
    with pytest.raises(TypeError, match="not one key"):
        await store.delete(Piece, documents="a")
    assert await postgres.fetch_value("SELECT count(*) FROM piece") == 0


async def test_a_table_without_the_document_column_names_create_table(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Piece, dimension=8)
    await write(store, pieces("a", 3))
    with pytest.raises(ConfigurationError, match="run create_table"):
        await write(store, pieces("a", 3), document="doc")
    await store.create_table(Piece, dimension=8, documents=True)  # the column, its index concurrently
    await write(store, pieces("a", 2), document="doc")
    assert len(await rows_of(postgres, "a")) == 2


async def test_get_returns_models_in_the_order_asked_with_none_for_missing(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Piece, dimension=8)
    values = pieces("a", 5)
    await write(store, values, key="text")
    asked = ["a chunk 3 v1", "nothing", "a chunk 0 v1", "a chunk 3 v1"]
    found = await store.get(Piece, keys=asked)
    assert [piece.text if piece else None for piece in found] == [
        "a chunk 3 v1",
        None,
        "a chunk 0 v1",
        "a chunk 3 v1",
    ]
    row = await postgres.fetch_value("SELECT id FROM piece WHERE payload->>'position' = '4'")
    assert await store.get(Piece, ids=[row, str(row), uuid.uuid4()]) == [values[4], values[4], None]
    assert await store.get(Piece, keys=[]) == []
    with pytest.raises(ValueError, match=r"keys=.*or ids="):
        await store.get(Piece)
    with pytest.raises(ValueError, match="not a UUID"):
        await store.get(Piece, ids=["nope"])


async def test_paging_sees_every_row_once_under_concurrent_inserts(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Piece, dimension=8)
    first = [Piece(f"d{i}", i, f"old {i}", lang=("en", "de")[i % 2]) for i in range(250)]
    await write(store, first)
    seen: list[str] = []
    after = None
    batch = 0
    while True:
        page = await store.page(Piece, after=after, limit=40)
        assert isinstance(page, Page)
        seen += [piece.text for piece in page.items]
        batch += 1  # rows written between pages, some stamped before the cursor
        await write(store, [Piece(f"n{batch}", i, f"new {batch} {i}") for i in range(7)])
        if page.after is None:
            break
        after = page.after
    old = [text for text in seen if text.startswith("old")]
    assert sorted(old) == sorted(piece.text for piece in first)
    assert len(seen) == len(set(seen))
    german = []
    after = None
    while True:
        page = await store.page(Piece, requirements=R.equal("lang", "de"), after=after, limit=33)
        german += [piece.text for piece in page.items]
        if page.after is None:
            break
        after = page.after
    assert sorted(german) == sorted(piece.text for piece in first if piece.lang == "de")
    with pytest.raises(ValueError, match="cursor"):
        await store.page(Piece, after="yesterday")
    with pytest.raises(ValueError, match="limit"):
        await store.page(Piece, limit=0)
