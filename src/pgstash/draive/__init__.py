"""`pgstash.draive`: the names of `draive.postgres` on pgstash, for the draive installed.

Switch a draive application with one line: `from draive.postgres import ...` becomes
`from pgstash.draive import ...`. Each factory returns draive's own State, built on pgstash's
stores (their caches, NOTIFY invalidation and transactions), in the seed's tables:

- draive 0.89.x (the seed): `PostgresConnectionPool`, `PostgresConfigurationRepository`,
  `PostgresInstructionsRepository`, `PostgresModelMemory`, `PostgresVectorIndex`;
- the newest draive (0.103): `PostgresConnectionPool`, `PostgresConfigurationRepository`,
  `PostgresTemplatesRepository`, `PostgresConversationMemory`, `PostgresVectorIndex`.

`PostgresState` (the scope's pool) and `DRAIVE_GENERATION` ("0.89" or "newest") on both. Needs
Python 3.13 and draive (`pip install 'pgstash[draive]'`); `import pgstash` never loads this.
"""

from __future__ import annotations

import importlib.util

from pgstash.draive.pool import PostgresConnectionPool, PostgresState, current_postgres
from pgstash.draive.vectors import PostgresVectorIndex

if importlib.util.find_spec("draive.models.instructions") is not None:
    DRAIVE_GENERATION = "0.89"
    from pgstash.draive.seed import (
        PostgresConfigurationRepository,
        PostgresInstructionsRepository,
        PostgresModelMemory,
    )

    __all__ = [
        "DRAIVE_GENERATION",
        "PostgresConfigurationRepository",
        "PostgresConnectionPool",
        "PostgresInstructionsRepository",
        "PostgresModelMemory",
        "PostgresState",
        "PostgresVectorIndex",
        "current_postgres",
    ]
else:
    DRAIVE_GENERATION = "newest"
    from pgstash.draive.newest import (
        PostgresConfigurationRepository,
        PostgresConversationMemory,
        PostgresTemplatesRepository,
    )

    __all__ = [
        "DRAIVE_GENERATION",
        "PostgresConfigurationRepository",
        "PostgresConnectionPool",
        "PostgresConversationMemory",
        "PostgresState",
        "PostgresTemplatesRepository",
        "PostgresVectorIndex",
        "current_postgres",
    ]
