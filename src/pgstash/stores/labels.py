"""Labels of instructions (schema/0010, queries/instructions_labels.sql).

Each revision of a name has a number (1, 2, 3, ... in commit order). A label (`production`,
`staging`, any lower-case identifier) points at one revision of one name; `latest` is not
stored: it is always the newest revision, and moves with every `define`. Every move of a label
is a row (`label_history`): who (the session's role), when, from and to; `rollback` undoes the
last move not yet undone, so repeated it walks back through the history.

Writes run under the name's transaction advisory lock (`instructions_lock`, as `define`), check
what they need first (the revision exists, the label is where `expected` says) and NOTIFY the
name in their transaction: every process's caches evict the name at commit. Reads by label or
revision are cached per name beside the newest revision, under the same rules (`DocumentCache`:
nothing is cached while the listener is down, nor a value fetched across an invalidation).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
import orjson

from pgstash.connection import Postgres
from pgstash.errors import LabelConflictError, LabelNotFoundError
from pgstash.stores.diffs import unified
from pgstash.stores.selection import LATEST, SelectingStore, check_label, movable, revision_number
from pgstash.validators import cutoff, positive_int

__all__ = ["LabelMove", "LabelledStore"]


@attrs.frozen(slots=True)
class LabelMove:
    """One move of a label: `from_revision` None when it was set, `to_revision` None when it was
    removed; `rollback` when the move undid an earlier one; `moved_by` the session's role."""

    name: str
    label: str
    moved: datetime
    from_revision: int | None
    to_revision: int | None
    moved_by: str
    rollback: bool = False


@attrs.define(eq=False)
class LabelledStore(SelectingStore):
    """The label half of `PostgresInstructionsRepository`: labels, their moves, and diffs."""

    # -- reads -----------------------------------------------------------------------------------

    async def labels(self, name: str) -> Mapping[str, int | None]:
        """Every label of `name` and the revision it points at, `latest` first (None when the
        newest revision was stored by another writer and is not numbered yet); {} for a name
        with no revision. One statement, not cached."""
        key = self._key(name)
        postgres = self._pool()
        await self._require_labels(postgres)
        rows = await postgres.run("instructions_labels_of", name=key)
        return {row["label"]: row["revision"] for row in rows}

    async def label_history(self, name: str, label: str) -> Sequence[LabelMove]:
        """Every move of `label` of `name`, newest first (for `latest`: each numbered revision
        moving it). Not cached."""
        key, label = self._key(name), check_label(label)
        postgres = self._pool()
        await self._require_labels(postgres)
        if label == LATEST:
            rows = await postgres.run("instructions_latest_history", name=key)
        else:
            rows = await postgres.run("instructions_label_history", name=key, label=label)
        return tuple(_move(key, row) for row in rows)

    # -- writes ----------------------------------------------------------------------------------

    async def move_label(
        self, name: str, label: str, *, to: int | str | Any, expected: int | None
    ) -> LabelMove:
        """Points `label` of `name` at revision `to` (a number, an `InstructionsRevision` of
        `name`, or another label, whose revision is taken) if it points at `expected` now (None:
        it is not set), else raises `LabelConflictError` and changes nothing. A revision that is
        not stored raises `LabelNotFoundError`; nothing is written before every check passed."""
        key, label = self._key(name), movable(label)
        target = check_label(to, "to") if isinstance(to, str) else revision_number(to, key, "to")
        if expected is not None:
            expected = revision_number(expected, key, "expected")

        async def move(postgres: Postgres) -> LabelMove:
            revision = await self._target(postgres, key, target)
            current = await postgres.run("instructions_label_current", name=key, label=label)
            if current != expected:
                raise LabelConflictError(key, label, expected, current)
            row = await postgres.run(
                "instructions_label_move", name=key, label=label, revision=revision, undoes=None
            )
            return LabelMove(key, label, row["moved"], current, revision, row["moved_by"])

        return await self._labelled_write(key, move)

    async def remove_label(self, name: str, label: str) -> LabelMove:
        """Removes `label` from `name` (a move to nothing, kept in `label_history`; `rollback`
        sets it again). A label that is not set raises `LabelNotFoundError`."""
        key, label = self._key(name), movable(label)

        async def remove(postgres: Postgres) -> LabelMove:
            current = await postgres.run("instructions_label_current", name=key, label=label)
            if current is None:
                raise LabelNotFoundError(
                    key, label, f"instructions {key!r} have no label {label!r} to remove"
                )
            row = await postgres.run(
                "instructions_label_move", name=key, label=label, revision=None, undoes=None
            )
            return LabelMove(key, label, row["moved"], current, None, row["moved_by"])

        return await self._labelled_write(key, remove)

    async def rollback(self, name: str, label: str) -> LabelMove:
        """Undoes the last move of `label` that is not undone yet (repeated: the one before, and
        so on): the label points where it pointed before that move (a label that was set by it
        is removed). Nothing left to undo raises `LabelNotFoundError`."""
        key, label = self._key(name), movable(label)

        async def undo(postgres: Postgres) -> LabelMove:
            last = await postgres.run("instructions_label_last_move", name=key, label=label)
            if last is None:
                raise LabelNotFoundError(
                    key, label, f"label {label!r} of instructions {key!r} has no move left to roll back"
                )
            back = last["from_revision"]
            if back is not None and not await postgres.run(
                "instructions_revision_exists", name=key, revision=back
            ):
                raise LabelNotFoundError(
                    key,
                    label,
                    f"cannot roll back label {label!r} of {key!r}: revision {back} it "
                    "pointed at before is no longer stored (pruned or deleted)",
                )
            row = await postgres.run(
                "instructions_label_move", name=key, label=label, revision=back, undoes=last["moved"]
            )
            return LabelMove(key, label, row["moved"], last["to_revision"], back, row["moved_by"], True)

        return await self._labelled_write(key, undo)

    async def diff(self, name: str, a: int | str | Any, b: int | str | Any) -> str:
        """A unified diff from revision `a` to revision `b` of `name` (each a number, a label or
        an `InstructionsRevision` of `name`): description, arguments, meta, config and content;
        "" when they read the same. Either not stored raises `LabelNotFoundError`."""
        key = self._key(name)
        sides = []
        for side in (a, b):
            label, revision = (side, None) if isinstance(side, str) else (None, side)
            if side is None:
                raise TypeError(f"diff takes revision numbers or labels, got {side!r}")
            selector = self._selector(key, label, revision) or ("label", LATEST)  # with its number
            found = await self._select(key, selector)
            if found is None:
                raise self._not_found(key, label, revision)
            sides.append((found, str(side) if label else str(found.revision)))
        (old, old_as), (new, new_as) = sides
        return unified(key, old, old_as, new, new_as)

    async def remove(self, name: str) -> None:
        """Deletes every revision of `name`, with its labels and their history."""
        key = self._key(name)

        async def delete(postgres: Postgres) -> None:
            labelled = await self._installed(postgres)
            await postgres.run(
                "instructions_remove_labelled" if labelled else "instructions_remove", name=key
            )

        await self._write(key, delete)

    async def _numbered_history(self, name: str) -> Sequence[Any]:
        """Every revision of `name` as `_revision_of` reads it, newest first (not cached)."""
        key = self._key(name)
        postgres = self._pool()
        statement = (
            "instructions_history_numbered" if await self._installed(postgres) else "instructions_history"
        )
        return tuple(self._revision_of(row) for row in await postgres.run(statement, name=key))

    async def prune(self, *, keep: int | None = None, older_than: datetime | timedelta | None = None) -> int:
        """`VersionedStore.prune`, never deleting a revision a label points at."""
        if (keep is None and older_than is None) or not await self._installed(self._pool()):
            return await super().prune(keep=keep, older_than=older_than)
        newest = 1 if keep is None else positive_int(keep, "keep", most=2**63 - 1)
        before = None if older_than is None else cutoff(older_than, "older_than")
        pruned: int = await self._pool().run("instructions_prune_labelled", keep=newest, older_than=before)
        return pruned

    async def _store(
        self,
        name: str,
        *,
        kind: str,
        labels: tuple[str, ...],
        message: str | None,
        config: bytes | None,
        **columns: Any,
    ) -> Mapping[str, Any]:
        """Appends a revision (`define`): the seed's `instructions_insert`, then (schema/0010)
        `instructions_number`: its number, message, kind and config, and `labels` moved to it.
        The row's `created`, `revision` and `author` (None on the seed's table alone, where only
        a plain revision can be stored)."""
        plain = kind == "text" and config is None and not labels and message is None
        row: Any = None

        async def insert(postgres: Postgres) -> None:
            nonlocal row
            installed = await self._installed(postgres)
            if not plain and not installed:
                await self._require_labels(postgres)  # raises before anything is written
            created = await postgres.run("instructions_insert", name=name, **columns)
            row = {"created": created, "revision": None, "author": None}
            if installed:
                row = await postgres.run(
                    "instructions_number",
                    name=name,
                    created=created,
                    why=message,
                    labels=list(labels),
                    kind=kind,
                    config=None if config is None else orjson.Fragment(config),
                )

        await self._write(name, insert)
        return row  # type: ignore[no-any-return]

    # -- internals -------------------------------------------------------------------------------

    async def _labelled_write(
        self, key: str, statement: Callable[[Postgres], Awaitable[LabelMove]]
    ) -> LabelMove:
        await self._require_labels(self._pool())
        return await self._write(key, statement)

    async def _target(self, postgres: Postgres, key: str, target: str | int) -> int:
        """The revision number `to` names, checked to be stored."""
        if isinstance(target, str):
            if target == LATEST:
                row = await postgres.run("instructions_latest", name=key)
                revision = None if row is None else row["revision"]
            else:
                revision = await postgres.run("instructions_label_current", name=key, label=target)
            if revision is None:
                raise LabelNotFoundError(
                    key, target, f"instructions {key!r} have no label {target!r} to move to"
                )
            return int(revision)
        if not await postgres.run("instructions_revision_exists", name=key, revision=target):
            raise LabelNotFoundError(key, str(target), f"instructions {key!r} have no revision {target}")
        return target


def _move(name: str, row: Mapping[str, Any]) -> LabelMove:
    return LabelMove(
        name,
        row["label"],
        row["moved"],
        row["from_revision"],
        row["to_revision"],
        row["moved_by"],
        row["undoes"] is not None,
    )
