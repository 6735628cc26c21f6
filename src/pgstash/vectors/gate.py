"""The scan gate (`vectors_scan_gate` of queries/fragments/gates.sql) around a statement's requirements:
per-call scan settings set inside the statement, and custom plans kept where the best plan
depends on the filter's values (see `pgstash.vectors.search.planning`).

Which settings a call sets (not their values) picks the gate's text, `gate_shape`: the whole
`vectors_scan_gate` when it tunes the scan (iterative scans, ef_search, probes),
`vectors_bound_gate` when the bound on a filtered HNSW walk is all it sets, `vectors_plans_gate`
when it sets nothing. The smaller two are `vectors_scan_gate` without the CASEs that would fold to
NULL (a setting of None sets nothing there too), so each call's plan is made sooner; the rows,
the plan chosen and the generic plan kept out are the same."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pgstash.sql import names
from pgstash.sql.catalogue import Query
from pgstash.sql.composer import Fragment, fragment

__all__ = ["GATE_SETTINGS", "custom_plans", "gate", "gate_shape", "gate_values", "gated"]

# The gate's parameters, as `gate_values` binds them.
GATE_SETTINGS = ("iterative", "ef_search", "probes", "max_scan_tuples", "custom_plans")


def gate_values(settings: Mapping[str, int | None]) -> dict[str, Any]:
    """The gate's parameters for `settings` (iterative, ef_search, probes, max_scan_tuples; None
    sets nothing), custom plans kept."""
    return {
        "iterative": bool(settings.get("iterative")),
        "ef_search": settings.get("ef_search"),
        "probes": settings.get("probes"),
        "max_scan_tuples": settings.get("max_scan_tuples"),
        "custom_plans": True,
    }


def gate_shape(settings: Mapping[str, int | None]) -> Query:
    """The gate that sets `settings` (iterative, ef_search, probes, max_scan_tuples; None sets
    nothing): the smallest of the three that sets each one given."""
    tuned = settings.get("ef_search") is not None or settings.get("probes") is not None
    if settings.get("iterative") or tuned:
        return names.vectors_scan_gate
    if settings.get("max_scan_tuples") is not None:
        return names.vectors_bound_gate
    return names.vectors_plans_gate


def gate(requirements: Fragment, values: Mapping[str, Any], shape: Query) -> Fragment:
    """`requirements` inside the gate `shape` (`gate_shape`), its parameters bound to `values`
    (`gate_values`: those `shape` takes)."""
    taken = {name: values[name] for name in shape.parameters}
    return fragment(shape, fragments={"requirements": requirements}, **taken)


def gated(requirements: Fragment, settings: Mapping[str, int | None]) -> Fragment:
    """`requirements` inside the scan gate: `settings` (iterative, ef_search, probes,
    max_scan_tuples; None sets nothing) set in the statement, and custom plans kept."""
    return gate(requirements, gate_values(settings), gate_shape(settings))


def custom_plans(requirements: Fragment, filtered: bool) -> Fragment:
    """The requirements of a filtered listing, text search or delete, whose best plan depends on
    the filter's values: gated (no settings), so the server plans each call for its values in its
    one statement (a generic plan of `ORDER BY created DESC LIMIT` with an unknown filter can read
    the whole table backwards); unfiltered, as they are (one plan shape)."""
    return gated(requirements, {}) if filtered else requirements
