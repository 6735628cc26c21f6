"""`pgstash instructions history|labels|diff|move|rollback`: the labels of instructions from a
shell, for the person who promotes a prompt to production or takes it back.

    pgstash instructions history NAME            every revision: number, when, who, labels, message
    pgstash instructions labels NAME             every label and its revision
    pgstash instructions diff NAME A B           unified diff (A and B: revision numbers or labels)
    pgstash instructions move NAME LABEL TO [--expected N|none]
    pgstash instructions rollback NAME LABEL     undo the label's last move
    pgstash instructions label-history NAME LABEL

`move` without `--expected` takes the label's current revision as read just before, so a move
made by someone else in between is still refused (`LabelConflictError`).
"""

from __future__ import annotations

import argparse

from pgstash.cli.console import table
from pgstash.connection import Postgres
from pgstash.stores.instructions import PostgresInstructionsRepository
from pgstash.stores.labels import LabelMove

__all__ = ["configure", "run"]


def selector(text: str) -> int | str:
    """A revision number (digits) or a label."""
    return int(text) if text.isdigit() else text


def expected(text: str) -> int | None:
    if text.lower() == "none":
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"--expected takes a revision number or none, got {text!r}")
    return int(text)


def configure(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    history = actions.add_parser("history", parents=[common], help="every revision of NAME, newest first")
    history.add_argument("name")
    labels = actions.add_parser("labels", parents=[common], help="every label of NAME and its revision")
    labels.add_argument("name")
    diff = actions.add_parser("diff", parents=[common], help="unified diff between two revisions or labels")
    diff.add_argument("name")
    diff.add_argument("a", type=selector, help="a revision number or a label")
    diff.add_argument("b", type=selector, help="a revision number or a label")
    move = actions.add_parser("move", parents=[common], help="point LABEL of NAME at revision TO")
    move.add_argument("name")
    move.add_argument("label")
    move.add_argument("to", type=selector, help="a revision number, or a label whose revision is taken")
    move.add_argument(
        "--expected",
        type=expected,
        default=argparse.SUPPRESS,
        metavar="N|none",
        help="refuse unless LABEL points at revision N (none: is not set); default: where it points now",
    )
    rollback = actions.add_parser("rollback", parents=[common], help="undo the last move of LABEL of NAME")
    rollback.add_argument("name")
    rollback.add_argument("label")
    moves = actions.add_parser("label-history", parents=[common], help="every move of LABEL of NAME")
    moves.add_argument("name")
    moves.add_argument("label")


def _said(move: LabelMove) -> str:
    before = "unset" if move.from_revision is None else f"revision {move.from_revision}"
    after = "unset" if move.to_revision is None else f"revision {move.to_revision}"
    return f"{move.label} of {move.name}: {before} -> {after} (by {move.moved_by})"


async def run(postgres: Postgres, args: argparse.Namespace) -> int:
    repository = PostgresInstructionsRepository(postgres, cache_limit=0)
    if args.action == "history":
        labels = await repository.labels(args.name)
        by_revision: dict[int | None, list[str]] = {}
        for label, revision in labels.items():
            by_revision.setdefault(revision, []).append(label)
        rows = [
            [
                "-" if entry.revision is None else str(entry.revision),
                entry.created.isoformat(timespec="seconds"),
                entry.author or "",
                ", ".join(by_revision.get(entry.revision, [])) if entry.revision is not None else "",
                entry.kind,
                entry.message or "",
            ]
            for entry in await repository.history(args.name)
        ]
        if not rows:
            print(f"no instructions named {args.name!r}")
            return 1
        print(table(rows, ["revision", "created", "author", "labels", "kind", "message"]))
    elif args.action == "labels":
        labels = await repository.labels(args.name)
        if not labels:
            print(f"no instructions named {args.name!r}")
            return 1
        print(table([[label, str(revision)] for label, revision in labels.items()], ["label", "revision"]))
    elif args.action == "diff":
        print(await repository.diff(args.name, args.a, args.b) or "no difference")
    elif args.action == "move":
        current = (
            args.expected if "expected" in args else (await repository.labels(args.name)).get(args.label)
        )
        print(_said(await repository.move_label(args.name, args.label, to=args.to, expected=current)))
    elif args.action == "rollback":
        print(_said(await repository.rollback(args.name, args.label)))
    else:
        moves = await repository.label_history(args.name, args.label)
        rows = [
            [
                move.moved.isoformat(timespec="seconds"),
                "-" if move.from_revision is None else str(move.from_revision),
                "-" if move.to_revision is None else str(move.to_revision),
                move.moved_by,
                "rollback" if move.rollback else "",
            ]
            for move in moves
        ]
        print(table(rows, ["moved", "from", "to", "by", ""]) if rows else f"no moves of {args.label!r}")
    return 0
