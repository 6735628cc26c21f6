"""Which revision of instructions a read means, and reading it: the newest (`latest`), the one
a label points at, or one by its number; cached per name, and served through outages.

Reads by label or number are cached per name beside the newest revision (`VersionedStore`), in
a cache of their own that the same invalidations empty: per name, a dict from selector to
revision that is replaced, never changed, so a value fetched across an invalidation is never
stored (`DocumentCache.ticket`). Labels need schema/0010; whether a pool has it is asked until
the answer is yes (so a pool opened before `migrate` sees the tables once they exist).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Hashable, Mapping, Sequence
from typing import Any

import attrs

from pgstash.connection import Postgres
from pgstash.errors import InstructionsNotFoundError, LabelNotFoundError, SchemaMissingError
from pgstash.sql import names
from pgstash.stores.cache import MISS, DocumentCache
from pgstash.stores.listener import Listener
from pgstash.stores.outage import Outage
from pgstash.stores.versioned import VersionedStore

__all__ = ["LATEST", "SelectingStore", "Selector", "check_label", "movable", "revision_number"]

LATEST = "latest"
_LABEL = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_MOST_SELECTORS = 64  # per name in the cache: labels and revision numbers read

Selector = tuple[str, str | int]  # ("label", "production") or ("revision", 3)


def check_label(value: object, what: str = "label") -> str:
    """`value` if it is a label: a lower-case identifier (a-z, 0-9, _; not starting with a digit;
    at most 63 characters); `TypeError`/`ValueError` naming `what` otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if not _LABEL.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a label: use a lower-case identifier (a-z, 0-9 and _, not "
            "starting with a digit, at most 63 characters), such as 'production' or 'staging'"
        )
    return value


def revision_number(value: object, name: str, what: str = "revision") -> int:
    """A revision number: an int >= 1, or an `InstructionsRevision` of `name` (its number)."""
    declaration = getattr(value, "declaration", None)
    if declaration is not None:
        if declaration.name != name:
            raise ValueError(
                f"{what} is revision {getattr(value, 'revision', None)} of {declaration.name!r}, "
                f"not of {name!r}"
            )
        value = getattr(value, "revision", None)
        if value is None:
            raise ValueError(
                f"{what} of {name!r} has no number (stored by another writer before "
                "schema/0010; the next define() numbers it)"
            )
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 2**31 - 1:
        raise ValueError(f"{what} must be a revision number (an int >= 1), got {value!r}")
    return value


def _optional_label(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        check_label(value, attribute.name)


def movable(value: object, what: str = "label") -> str:
    label = check_label(value, what)
    if label == LATEST:
        raise ValueError(
            "'latest' is not moved by hand: it always names the newest revision (define() moves "
            "it); use another label, such as 'production'"
        )
    return label


class _Schema:
    """Whether schema/0010 is known to be applied on a pool."""

    installed = False


class _Selected:
    """A repository's cache of reads by label or number on one pool, and its outage memory."""

    __slots__ = ("bound", "cache", "outage")

    def __init__(self) -> None:
        self.bound: Postgres | None = None
        self.cache: DocumentCache | None = None
        self.outage = Outage()


@attrs.define(eq=False)
class SelectingStore(VersionedStore):
    """Reads of instructions by label or revision number, for `PostgresInstructionsRepository`."""

    default_label: str | None = attrs.field(default=None, kw_only=True, validator=_optional_label)
    stale_ok: bool = attrs.field(default=False, kw_only=True, validator=attrs.validators.instance_of(bool))
    _selected: _Selected = attrs.field(factory=_Selected, init=False, repr=False)

    def _revision_of(self, row: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def _declaration_of(self, row: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def _newest(self, key: str) -> Awaitable[Any]:
        raise NotImplementedError

    def _serving(self, stale_ok: bool | None) -> bool:
        """Whether a call serves through outages (its `stale_ok`, else the repository's)."""
        if stale_ok is None:
            return self.stale_ok
        if not isinstance(stale_ok, bool):
            raise TypeError(f"stale_ok must be a bool or None, got {type(stale_ok).__name__}")
        return stale_ok

    def _selector(self, key: str, label: str | None, revision: object) -> Selector | None:
        """What a read selects: None for the newest revision."""
        if label is not None and revision is not None:
            raise TypeError(f"read {key!r} by label= or by revision=, not both")
        if revision is not None:
            return ("revision", revision_number(revision, key))
        chosen = self.default_label if label is None else check_label(label)
        return None if chosen is None or chosen == LATEST else ("label", chosen)

    async def _choose(
        self,
        key: str,
        label: str | None,
        revision: object,
        stale_ok: bool | None,
        fallback: bool,
        *,
        full: bool = False,
    ) -> tuple[Any, bool]:
        """`(revision or None, stale)`, or `(NOTHING, True)`: serve the caller's fallback. The
        newest revision is read by the seed's statement (`instructions_newest`, as ever) unless
        the call needs what schema/0010 adds (`full`: number, kind, config) or serves through
        outages (its `.revision`)."""
        selector = self._selector(key, label, revision)
        serving = self._serving(stale_ok)
        if selector is None and (full or serving):
            selector = ("label", LATEST)
        elif selector is not None and not serving and not fallback:  # the cached fast path
            cache = self._selected.cache
            if (
                cache is not None
                and self._selected.bound is self._pool()
                and not self._selected.bound.in_transaction
            ):
                entry = cache.get(key)
                if entry is not MISS and selector in entry:
                    return entry[selector], False

        if not serving and not fallback:  # what `Outage.read` does then, without its two frames
            return await (self._newest(key) if selector is None else self._select(key, selector)), False

        async def read() -> Any:
            return await (self._newest(key) if selector is None else self._select(key, selector))

        remembered: tuple[str, Hashable] = (key, selector)
        return await self._selected.outage.read(remembered, read, stale_ok=serving, fallback=fallback)

    def _not_found(self, key: str, label: str | None, revision: object) -> InstructionsNotFoundError:
        selector = self._selector(key, label, revision)
        if selector is None:
            return InstructionsNotFoundError(key)
        kind, value = selector
        what = f"label {value!r}" if kind == "label" else f"revision {value}"
        return LabelNotFoundError(
            key,
            str(value),
            f"instructions {key!r} have no {what} (labels(name) lists the labels, "
            "history(name) the revisions)",
        )

    @staticmethod
    def _labels_to_move(labels: object) -> tuple[str, ...]:
        if isinstance(labels, str) or not isinstance(labels, Sequence | set | frozenset):
            raise TypeError(f"labels must be a sequence of labels, got {type(labels).__name__}")
        return tuple(dict.fromkeys(movable(label) for label in labels))

    async def _installed(self, postgres: Postgres) -> bool:
        schema = postgres.shared("pgstash.stores.selection.schema", lambda _: _Schema())
        if not schema.installed:
            schema.installed = bool(await postgres.run(names.instructions_labels_installed))
        return schema.installed

    async def _require_labels(self, postgres: Postgres) -> None:
        if not await self._installed(postgres):
            raise SchemaMissingError(
                "instructions_labels",
                "`pgstash migrate` (or `await pgstash.migrate(postgres)`): labels, revision "
                "numbers, chat prompts and commit messages need schema/0010",
            )

    async def _select(self, key: str, selector: Selector) -> Any:
        """The revision a label or number selects (None: none), cached per name."""

        async def fetch(postgres: Postgres) -> Any:
            await self._require_labels(postgres)
            kind, value = selector
            if value == LATEST:
                row = await postgres.run(names.instructions_latest, name=key)
            elif kind == "label":
                row = await postgres.run(names.instructions_labelled, name=key, label=value)
            else:
                row = await postgres.run(names.instructions_numbered, name=key, revision=value)
            return None if row is None else self._revision_of(row)

        postgres = self._pool()
        if postgres.in_transaction:
            return await fetch(postgres)
        cache = await self._selection_cache(postgres)
        entry = cache.get(key)
        if entry is not MISS and selector in entry:
            return entry[selector]
        ticket = cache.ticket()
        value = await fetch(postgres)
        if ticket is not None and ticket == cache.generation:
            current = cache.get(key)
            fresh = {} if current is MISS or len(current) >= _MOST_SELECTORS else dict(current)
            fresh[selector] = value
            cache.put(key, fresh, ticket)
        return value

    async def _labelled_listing(self, label: str) -> tuple[Any, ...]:
        """The declarations a label points at, by name; cached (one entry per label)."""

        async def fetch(postgres: Postgres) -> tuple[Any, ...]:
            await self._require_labels(postgres)
            rows = await postgres.run(names.instructions_labelled_declarations, label=label)
            return tuple(self._declaration_of(row) for row in rows)

        postgres = self._pool()
        if postgres.in_transaction:
            return await fetch(postgres)
        cache = await self._selection_cache(postgres)
        listing = cache.get_listing()
        if listing is not MISS and label in listing:
            found: tuple[Any, ...] = listing[label]
            return found
        ticket = cache.ticket()
        value = await fetch(postgres)
        if ticket is not None and ticket == cache.generation:
            current = cache.get_listing()
            fresh = {} if current is MISS or len(current) >= _MOST_SELECTORS else dict(current)
            fresh[label] = value
            cache.put_listing(fresh, ticket)
        return value

    async def _selection_cache(self, postgres: Postgres) -> DocumentCache:
        selected = self._selected
        if selected.bound is postgres and selected.cache is not None:
            return selected.cache
        listener = Listener.of(postgres)
        cache = DocumentCache(self.store, self.cache_limit, float(self.cache_expiration), listener)
        selected.bound, selected.cache = postgres, cache
        await listener.subscribe(cache)
        return cache
