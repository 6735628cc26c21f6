"""With draive installed (Python 3.13), `import pgstash` still loads nothing of draive or haiway."""

import subprocess
import sys


def test_import_pgstash_loads_no_draive_nor_haiway() -> None:
    script = (
        "import sys, pgstash\n"
        "print([m for m in ('draive', 'haiway', 'pgstash.draive') if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_generation_matches_the_installed_draive() -> None:
    import importlib.metadata

    import pgstash.draive

    version = tuple(int(part) for part in importlib.metadata.version("draive").split(".")[:2])
    assert pgstash.draive.DRAIVE_GENERATION == ("0.89" if version < (0, 90) else "newest")
