"""`VectorTable`: the one context a vector call carries down, in place of callbacks into the index.

The facade (`PostgresVectorIndex`) makes one per call from its settings and the call's model and
`table=`; the write and search functions take it and read from it the pool, the table's name, the
model its payloads read back as, the converter, the embedders and, when they need them, the
table's facts (`facts.py`: read from the catalog once, then remembered by the pool). Nothing here
reaches back into the facade.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import cattrs
import numpy as np
from numpy.typing import NDArray

from pgstash.connection import Postgres, resolve
from pgstash.errors import SchemaMissingError
from pgstash.sql.composer import Fragment
from pgstash.vectors.columns import column_fragment, existing_fields
from pgstash.vectors.facts import TableFacts, remembered, table_facts, tables
from pgstash.vectors.filter_fragments import requirement_fragment
from pgstash.vectors.filters import AttributeRequirement, KeyOf
from pgstash.vectors.inputs import ImageEmbedding, TextEmbedding, check_model, query_vector, table_name
from pgstash.vectors.payload_keys import payload_key_of
from pgstash.vectors.payloads import read_back, reader

__all__ = ["VectorTable"]

_MOST_REMEMBERED = 256  # the tables an index remembers (models x table names)


@attrs.frozen(slots=True)
class VectorTable:
    """One call's table: `pool` (None: the current pool, resolved when first used), its checked
    `name`, the `model` its payloads are, the `converter` between them, and the embedders."""

    pool: Postgres | None
    name: str
    model: type
    converter: cattrs.Converter
    embedding: TextEmbedding | None = None
    image_embedding: ImageEmbedding | None = None
    # the default flow's searches planned once, by limit (`search/vector.py`, `Ready`)
    ready: dict[int, Any] = attrs.field(factory=dict, init=False, eq=False, hash=False, repr=False)
    _required: _Required = attrs.field(
        default=attrs.Factory(lambda table: _Required(table), takes_self=True),
        init=False, eq=False, hash=False, repr=False,
    )  # fmt: skip

    @classmethod
    def of(
        cls,
        remembered: dict[Any, VectorTable],
        model: type,
        table: str | None,
        pool: Postgres | None,
        converter: cattrs.Converter,
        embedding: TextEmbedding | None,
        image_embedding: ImageEmbedding | None,
    ) -> VectorTable:
        """A new call's table: `model` checked (`TypeError`), the table named (`ValueError` for a
        bad name); remembered in `remembered` (the index's, whose pool, converter and embedders
        these are) by model and `table=`, where the index looks it up first."""
        check_model(model, converter)
        made = cls(pool, table_name(model, table), model, converter, embedding, image_embedding)
        if len(remembered) >= _MOST_REMEMBERED:
            remembered.clear()
        with contextlib.suppress(TypeError):  # a model class that is not hashable: made every call
            remembered[model, table] = made
        return made

    @property
    def postgres(self) -> Postgres:
        """The pool the call runs on (`ConfigurationError` when none is given nor current)."""
        return resolve(self.pool)

    def missing(self) -> SchemaMissingError:
        """The error of a table that does not exist: its remedy is `create_table`, not `migrate`."""
        return SchemaMissingError(
            self.name, f"`await PostgresVectorIndex().create_table({self.model.__name__}, dimension=...)`"
        )

    def required(self) -> contextlib.AbstractContextManager[None]:
        """A missing table inside the block names `create_table` as its remedy (one guard per
        table: it keeps no state between blocks)."""
        return self._required

    def remembered(self) -> TableFacts | None:
        """The table's facts when read at most `FACTS_TTL` seconds ago, else None (`facts()`)."""
        return remembered(self.postgres, self.name)

    async def facts(self, *, fresh: bool = False) -> TableFacts:
        """The table's facts, at most `FACTS_TTL` seconds old unless `fresh`; `missing()` when
        there is no such table."""
        return await table_facts(self.postgres, self.name, self.missing, fresh=fresh)

    def forget(self) -> None:
        """Drops the remembered facts (after DDL): the next call reads them again."""
        tables(self.postgres).pop(self.name, None)

    def key_of(self) -> KeyOf:
        """Each attrs field of the model to the payload key the converter writes for it (the
        model's fields and hooks walked when a path first holds an attrs field, once a call)."""
        made: list[KeyOf] = []

        def key_of(field: attrs.Attribute[Any]) -> str:
            if not made:
                made.append(payload_key_of(self.converter, self.model))
            return made[0](field)

        return key_of

    async def where(self, requirements: AttributeRequirement | None) -> Fragment:
        """The `{requirements}` fragment; the converter's payload keys are read (a walk of the
        model's fields and hooks) and the table's indexed fields looked up (its facts, read at
        most every 30 s: `columns.py`) only when there are requirements to map onto them."""
        if requirements is None:
            return requirement_fragment(None)
        fields = existing_fields(await self.facts())
        return requirement_fragment(
            requirements,
            key_of=self.key_of(),
            column_of=(lambda leaf, path: column_fragment(fields, leaf, path)) if fields else None,
        )

    def read(self, payload: Any) -> Any:
        """A stored payload as the model (`StoredDataError` naming the table when it does not fit)."""
        return read_back(self.converter, payload, self.model, self.name)

    def scored(self, rows: Sequence[Any], scores: bool = True) -> list[Any]:
        """Each row's payload as the model, with its score (the rows' `payload` and `score`);
        the models alone when not `scores` (`search`: no pairs made to be taken apart again)."""
        models = self.reader()([row["payload"] for row in rows])
        if not scores:
            return models
        return list(zip(models, [float(row["score"]) for row in rows], strict=True))

    def reader(self) -> Callable[[list[Any]], list[Any]]:
        """`read` for the payloads of one call's rows (the model's structure hook looked up once)."""
        return reader(self.converter, self.model, self.name)

    async def query_vector(self, query: object) -> NDArray[np.float32]:
        """The search's query as one checked float32 vector (a text or image is embedded)."""
        return await query_vector(query, self.embedding, self.image_embedding)


class _Required(contextlib.AbstractContextManager[None]):
    """`VectorTable.required`'s block (a class: a generator-based context manager costs a
    search more than the rest of its bookkeeping)."""

    __slots__ = ("table",)

    def __init__(self, table: VectorTable) -> None:
        self.table = table

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        if isinstance(error, SchemaMissingError) and error.table == self.table.name:
            raise self.table.missing() from error
