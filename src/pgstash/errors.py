"""Every error pgstash raises; all derive from `PgstashError`."""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "DatabaseError",
    "DimensionMismatchError",
    "EmbeddingMissingError",
    "InstructionsNotFoundError",
    "LabelConflictError",
    "LabelNotFoundError",
    "MemoryElementError",
    "MigrationError",
    "MissingArgumentError",
    "PgstashError",
    "SchemaMissingError",
    "StoredDataError",
]


class PgstashError(Exception):
    """Base class of every pgstash error."""


class ConfigurationError(PgstashError):
    """pgstash is set up wrongly (no DSN, unreachable server, no current pool), or a stored
    configuration does not fit the type it is loaded into."""


class MigrationError(PgstashError):
    """A migration could not be applied, or an applied migration's file has changed."""


class SchemaMissingError(PgstashError):
    """A table a call needs does not exist; the message names it and what creates it."""

    def __init__(self, table: str, remedy: str) -> None:
        super().__init__(f'table "{table}" does not exist: create it with {remedy}')
        self.table = table
        self.remedy = remedy


class DimensionMismatchError(PgstashError, ValueError):
    """A vector's dimension differs from the dimension of its table or of its batch."""

    def __init__(self, expected: int, actual: int, where: str = "") -> None:
        at = f" ({where})" if where else ""
        super().__init__(f"expected vectors of dimension {expected}, got {actual}{at}")
        self.expected = expected
        self.actual = actual


class InstructionsNotFoundError(PgstashError, LookupError):
    """No instructions are stored under the name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no instructions named {name!r}; store them with define()")
        self.name = name


class LabelNotFoundError(InstructionsNotFoundError):
    """The instructions have no such label (or revision, or move to undo); the message says which
    and what they have."""

    def __init__(self, name: str, label: str, detail: str) -> None:
        PgstashError.__init__(self, detail)
        self.name = name
        self.label = label


class LabelConflictError(PgstashError):
    """`move_label` found the label somewhere other than `expected`: another writer moved it
    first. Nothing was written; read `labels(name)` and decide again."""

    def __init__(self, name: str, label: str, expected: int | None, actual: int | None) -> None:
        def where(revision: int | None) -> str:
            return "unset" if revision is None else f"at revision {revision}"

        super().__init__(
            f"label {label!r} of instructions {name!r} is {where(actual)}, not {where(expected)} as "
            "expected: another writer moved it first; nothing was changed (read labels() and "
            "move it again with expected= its current revision)"
        )
        self.name = name
        self.label = label
        self.expected = expected
        self.actual = actual


class MissingArgumentError(PgstashError, KeyError):
    """A declared required argument of instructions was not given."""

    def __init__(self, instructions: str, argument: str) -> None:
        super().__init__(f"instructions {instructions!r} require the argument {argument!r}")
        self.instructions = instructions
        self.argument = argument

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class StoredDataError(PgstashError):
    """A stored row cannot be read back (written by hand, by older code, or by another writer):
    the message names the identifier or table, the field, and the problem."""


class EmbeddingMissingError(PgstashError, ValueError):
    """A call needs an embedding model (text or image) and none was given to the index."""


class MemoryElementError(StoredDataError, ValueError):
    """A stored memory element cannot be read back: an unknown `type` tag, or a shape that does
    not fit its type. The message names the memory and the problem."""


class DatabaseError(PgstashError):
    """A driver error, wrapped with the name of the query that failed and its SQLSTATE."""

    def __init__(self, query: str, sqlstate: str | None, message: str) -> None:
        state = f" [SQLSTATE {sqlstate}]" if sqlstate else ""
        super().__init__(f"query {query!r} failed{state}: {message}")
        self.query = query
        self.sqlstate = sqlstate
