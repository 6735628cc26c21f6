"""`pgstash prune`: retention from the shell (configurations and instructions by --keep N and
--older-than AGE, memories by --idle AGE), and the argument types it shares with other commands."""

from __future__ import annotations

import argparse
import re
from datetime import timedelta

from pgstash.cli.session import connect

__all__ = ["PRUNE_HELP", "cmd_prune", "configure_prune", "duration", "positive", "prune_arguments"]


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def duration(text: str) -> timedelta:
    """An argparse type: a positive age such as 90s, 30m, 12h, 7d, 2w or 1d12h."""
    parts = _DURATION.findall(text.strip())
    if not parts or "".join(number + unit for number, unit in parts) != text.strip():
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 30m, 12h, 7d, 2w, 1d12h)")
    try:
        age = timedelta(seconds=sum(float(number) * _UNITS[unit] for number, unit in parts))
    except OverflowError:
        raise argparse.ArgumentTypeError(f"too long: {text!r}") from None
    if age <= timedelta(0):
        raise argparse.ArgumentTypeError(f"must be longer than zero, got {text!r}")
    return age


async def cmd_prune(args: argparse.Namespace) -> int:
    from pgstash.stores.configurations import PostgresConfigurationRepository
    from pgstash.stores.instructions import PostgresInstructionsRepository
    from pgstash.stores.memory import PostgresModelMemory
    from pgstash.stores.versioned import VersionedStore

    async with connect(args, writes=False) as postgres:
        if args.store == "memories":
            forgotten = await PostgresModelMemory.forget_idle(args.idle, postgres=postgres)
            print(f"forgot {forgotten} memories idle for {args.idle}")
            return 0
        store: VersionedStore = PostgresConfigurationRepository(postgres)
        if args.store == "instructions":
            store = PostgresInstructionsRepository(postgres)
        pruned = await store.prune(keep=args.keep, older_than=args.older_than)
    print(f"pruned {pruned} {args.store} versions (each key's newest is always kept)")
    return 0


PRUNE_HELP = (
    "configurations and instructions: delete old versions, never a key's newest (--keep N: all "
    "but each key's N newest; --older-than AGE: those older than AGE; both: those beyond N and "
    "older than AGE). memories: forget the memories with nothing remembered for --idle AGE. "
    "AGE is e.g. 90s, 30m, 12h, 7d, 2w, 1d12h."
)


def configure_prune(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    sub.description = PRUNE_HELP
    sub.add_argument("store", choices=("configurations", "instructions", "memories"), help="what to prune")
    for option, kind, metavar, help in (
        ("--keep", positive, "N", "configurations|instructions: keep each key's N newest"),
        ("--older-than", duration, "AGE", "configurations|instructions: delete older versions"),
        ("--idle", duration, "AGE", "memories: forget those with nothing remembered this long"),
    ):
        sub.add_argument(option, type=kind, metavar=metavar, help=help)


def prune_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The options `pgstash prune STORE` takes, checked before connecting (exit status 2)."""
    if args.store == "memories":
        if args.idle is None or args.keep is not None or args.older_than is not None:
            parser.error("prune memories takes --idle AGE (and no --keep or --older-than)")
    elif args.idle is not None or (args.keep is None and args.older_than is None):
        parser.error(f"prune {args.store} takes --keep N, --older-than AGE or both (and no --idle)")
