"""The scan gate (`vectors_scan_gate` of queries/fragments/gates.sql) around a statement's requirements:
per-call scan settings set inside the statement, and custom plans kept where the best plan
depends on the filter's values (see `pgstash.vectors.search.planning`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pgstash.sql.composer import Fragment, fragment

__all__ = ["GATE_SETTINGS", "custom_plans", "gate", "gate_values", "gated"]

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


def gate(requirements: Fragment, values: Mapping[str, Any]) -> Fragment:
    """`requirements` inside `vectors_scan_gate`, its parameters bound to `values` (`gate_values`)."""
    return fragment("vectors_scan_gate", fragments={"requirements": requirements}, **values)


def gated(requirements: Fragment, settings: Mapping[str, int | None]) -> Fragment:
    """`requirements` inside `vectors_scan_gate`: `settings` (iterative, ef_search, probes,
    max_scan_tuples; None sets nothing) set in the statement, and custom plans kept."""
    return gate(requirements, gate_values(settings))


def custom_plans(requirements: Fragment, filtered: bool) -> Fragment:
    """The requirements of a filtered listing, text search or delete, whose best plan depends on
    the filter's values: gated (no settings), so the server plans each call for its values in its
    one statement (a generic plan of `ORDER BY created DESC LIMIT` with an unknown filter can read
    the whole table backwards); unfiltered, as they are (one plan shape)."""
    return gated(requirements, {}) if filtered else requirements
