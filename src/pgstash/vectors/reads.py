"""Reading a vector table back: `get(model, keys=[...])` / `get(model, ids=[...])` and
`page(model, requirements=None, after=None, limit=100)` (queries/vectors_reads.sql).

`get` is one statement whatever the number of keys: the ids (a key's id as `keys.py` derives it)
unnested with their positions and joined on the primary key, so the models come back in the
order asked, `None` in the place of a key or id that has no row (the list is as long as the
request). `page` is keyset paging by `(created, id)`, oldest first: `Page.after` is the cursor
of the last row returned (an opaque string; `None` when the table has no more rows), so a page
never repeats or skips a row that existed when paging began, whatever is written meanwhile.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Generic, TypeVar

import attrs

from pgstash.connection import Postgres
from pgstash.sql import names
from pgstash.sql.composer import Fragment, compose
from pgstash.vectors.filters import AttributeRequirement
from pgstash.vectors.gate import custom_plans
from pgstash.vectors.table import VectorTable
from pgstash.vectors.write.keys import row_ids, uuid_texts

__all__ = [
    "MAX_PAGE", "Page", "get", "get_rows", "page", "page_records", "page_rows", "parse_cursor", "row_ids_of",
]  # fmt: skip

Model = TypeVar("Model")
MAX_PAGE = 10_000


@attrs.frozen(slots=True)
class Page(Generic[Model]):
    """One page of `page()`: its models in `(created, id)` order and the cursor to pass as
    `after=` for the next page (`None`: this was the last)."""

    items: Sequence[Model]
    after: str | None


def row_ids_of(name: str, keys: Iterable[object] | None, ids: Iterable[object] | None) -> list[str]:
    """The row ids asked for, as uuid text: `keys` as `index(..., key=...)` derives them, or
    `ids` (UUIDs or their text). Exactly one of the two; anything else raises before any SQL."""
    if (keys is None) == (ids is None):
        raise ValueError("get takes keys=[...] or ids=[...]")
    asked = keys if keys is not None else ids
    if isinstance(asked, str | bytes) or not isinstance(asked, Iterable):
        raise TypeError("keys= and ids= take a collection, not one value: keys=[key]")
    if keys is not None:
        listed = list(asked)
        return uuid_texts(row_ids(name, listed, unique=False)) if listed else []
    texts = []
    for position, value in enumerate(asked):
        try:
            texts.append(str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))))
        except ValueError:
            raise ValueError(f"ids[{position}] is not a UUID: {value!r}") from None
    return texts


async def get_rows(postgres: Postgres, name: str, ids: list[str]) -> list[Any | None]:
    """The payload of each id in the order asked, None where there is no row (one statement)."""
    found: list[Any | None] = [None] * len(ids)
    if not ids:
        return found
    rows = await postgres.run_statement(compose(names.vectors_get_ids, slots={"table": name}, ids=ids))
    for row in rows:
        found[row["position"] - 1] = row["payload"]
    return found


def parse_cursor(after: object) -> tuple[dt.datetime | None, uuid.UUID | None]:
    """The (created, id) of the row a `Page.after` cursor names, (None, None) for `None`; any
    other value raises `ValueError` (the command line checks `--after` with it)."""
    if after is None:
        return None, None
    if isinstance(after, str):
        created, _, row = after.partition("/")
        try:
            return dt.datetime.fromisoformat(created), uuid.UUID(row)
        except ValueError:
            pass
    raise ValueError(f"after is the cursor a Page returned (Page.after), not {after!r}")


async def page_rows(
    postgres: Postgres, name: str, where: Fragment, after: object, limit: int
) -> tuple[list[Any], str | None]:
    """The rows (`id`, `created`, `payload`) of one page and the next cursor (None after the last row)."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit is an integer from 1 to {MAX_PAGE:,}, got {limit!r}")
    created, row = parse_cursor(after)
    statement = compose(
        names.vectors_page,
        slots={"table": name},
        fragments={"requirements": custom_plans(where, True)},  # the cursor's range
        after_created=created,
        after_id=row,
        size=limit,
    )
    rows = await postgres.run_statement(statement)
    if len(rows) < limit:
        return list(rows), None
    last = rows[-1]
    return list(rows), f"{last['created'].isoformat()}/{last['id']}"


async def get(table: VectorTable, keys: Iterable[object] | None, ids: Iterable[object] | None) -> list[Any]:
    """`PostgresVectorIndex.get` on `table`."""
    asked = row_ids_of(table.name, keys, ids)
    with table.required():
        found = await get_rows(table.postgres, table.name, asked)
    return [None if payload is None else table.read(payload) for payload in found]


async def page_records(
    table: VectorTable, requirements: AttributeRequirement | None, after: object, limit: int
) -> tuple[list[Any], str | None]:
    """`page`'s rows as stored (`id`, `created`, `payload`) and its cursor: the command line prints
    each row's id beside its payload."""
    where = await table.where(requirements)
    with table.required():
        return await page_rows(table.postgres, table.name, where, after, limit)


async def page(
    table: VectorTable, requirements: AttributeRequirement | None, after: object, limit: int
) -> Page[Any]:
    """`PostgresVectorIndex.page` on `table`."""
    rows, cursor = await page_records(table, requirements, after, limit)
    return Page([table.read(row["payload"]) for row in rows], cursor)
