"""Where the command line's embedded data folder is: `PGSTASH_DATA_DIR`, else the nearest
`.pgstash` folder here or above, as git finds .git.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_DIR = ".pgstash"
DATA_DIR_VARIABLE = "PGSTASH_DATA_DIR"


def find_data_dir(start: str | Path | None = None) -> Path:
    """The command line's embedded folder, found as git finds .git: `PGSTASH_DATA_DIR`, else the
    nearest `.pgstash` folder in `start` (the current folder) or above it, else `start/.pgstash`."""
    chosen = os.environ.get(DATA_DIR_VARIABLE)
    if chosen:
        return Path(chosen).expanduser().resolve()
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / DEFAULT_DATA_DIR).is_dir():
            return folder / DEFAULT_DATA_DIR
    return here / DEFAULT_DATA_DIR
