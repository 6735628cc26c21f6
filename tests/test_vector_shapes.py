"""A search's statement and a filter's leaves composed once per shape, then only bound
(`vectors/search/plans.py`, `vectors/shapes.py`): the same SQL and the same arguments, in the same
order, as composing them again; and `search_options`, which checks settings once per shape, raises
what the checks raise."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest

from pgstash import AttributeRequirement
from pgstash.sql import names
from pgstash.sql.catalogue import Query
from pgstash.sql.composer import Fragment, compose, fragment
from pgstash.sql.statements import Statement
from pgstash.sql.templates import SlotValue
from pgstash.vectors.filter_fragments import requirement_fragment
from pgstash.vectors.gate import gated
from pgstash.vectors.search import options as settings
from pgstash.vectors.search import plans
from pgstash.vectors.shapes import shaped

pytestmark = pytest.mark.unit

OWN = (8, 0.5, 5.0, 64, 4096)  # the index's defaults, in settings.INDEX_FIELDS order


def composed(
    template: Query,
    slots: Mapping[str, SlotValue],
    requirements: Fragment,
    values: Mapping[str, object],
    gate_settings: Mapping[str, int | None] | None,
) -> Statement:
    """What `Search.statement` composed before plans.py: compose() with the gate around."""
    spliced = requirements if gate_settings is None else gated(requirements, gate_settings)
    return compose(
        template,
        slots={point: value for point, value in slots.items() if point in template.splice_points},
        fragments={"requirements": spliced},
        **{name: value for name, value in values.items() if name in template.parameters},
    )


def values(candidates: int, vector: list[float]) -> dict[str, object]:
    return {
        "query_vector": vector,
        "candidates": candidates,
        "max_distance": math.inf,
        "with_embeddings": False,
    }


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("filtered", [False, True])
def test_a_search_statement_binds_as_compose_would(exact: bool, filtered: bool) -> None:
    template = names.vectors_search_exact if exact else names.vectors_search
    tuned = {"ef_search": 64, "max_scan_tuples": 500}
    shapes = [(10, None), (20, {"max_scan_tuples": 500}), (30, {}), (40, tuned)]
    for round_, (bound, gate) in enumerate(shapes):  # no gate, the bound's, the plans', the whole one
        requirement = (
            AttributeRequirement.equal("topic", f"t{round_}") | AttributeRequirement.greater("rank", round_)
        ) & ~AttributeRequirement.exists("gone")
        where = requirement_fragment(requirement if filtered else None)
        for _ in range(2):  # composed, then from the remembered shape
            asked = values(bound, [0.5 + round_, 1.0])
            ours = plans.statement(template, {"table": "chunks"}, where, asked, gate)
            theirs = composed(template, {"table": "chunks"}, where, asked, gate)
            assert (ours.name, ours.kind, ours.sql, ours.args, ours.read) == (
                theirs.name, theirs.kind, theirs.sql, theirs.args, theirs.read,
            )  # fmt: skip


def test_a_binary_search_and_its_exact_twin_take_their_own_slots_and_values() -> None:
    slots = {"table": "chunks", "dimension": 3, "vector_type": "vector"}
    asked = {**values(10, [1.0, 0.0, 0.5]), "pool": 200}
    where = requirement_fragment(AttributeRequirement.less("rank", 3))
    for template in (names.vectors_search_binary, names.vectors_search_exact):
        for _ in range(2):
            ours = plans.statement(template, slots, where, asked, {"ef_search": 80})
            theirs = composed(template, slots, where, asked, {"ef_search": 80})
            assert (ours.sql, ours.args) == (theirs.sql, theirs.args)


def test_a_leaf_binds_as_fragment_would() -> None:
    for value in ("a", 3, None, [1, 2]):
        for _ in range(2):
            ours = shaped(names.filter_equal, {}, document={"k": value}, path=["k"], value=value)
            theirs = fragment(names.filter_equal, document={"k": value}, path=["k"], value=value)
            assert (ours.sql, ours.args) == (theirs.sql, theirs.args)


def asked(**changed: object) -> tuple[Any, ...]:
    call = {
        "mode": "vector", "query": [1.0], "limit": 8, "candidates": None, "rrf_k": 60, "weights": (1.0, 1.0),
        "score_threshold": None, "ef_search": None, "probes": None, "rerank": False, "requirements": None,
    }  # fmt: skip
    call.update(changed)
    return tuple(call[name] for name in settings.CALL_FIELDS)


def test_settings_found_valid_are_told_apart_by_type() -> None:
    settings.search_options(asked(limit=1), OWN)
    settings.search_options(asked(limit=1), OWN)  # remembered
    with pytest.raises((TypeError, ValueError), match="limit"):
        settings.search_options(asked(limit=True), OWN)
    settings.search_options(asked(score_threshold=1), OWN)
    with pytest.raises(ValueError, match="score_threshold"):
        settings.search_options(asked(score_threshold=True), OWN)
    with pytest.raises(ValueError, match="score_threshold"):
        settings.search_options(asked(score_threshold=math.nan), OWN)


def test_a_text_query_is_checked_on_every_call() -> None:
    settings.search_options(asked(mode="text", query="two words"), OWN)
    long = " ".join(["word"] * 65)
    with pytest.raises(ValueError) as remembered:
        settings.search_options(asked(mode="text", query=long), OWN)
    with pytest.raises(ValueError) as checked:
        settings.check(settings.SearchOptions(*asked(mode="text", query=long), *OWN))
    assert str(remembered.value) == str(checked.value)
    with pytest.raises(TypeError, match="text query"):
        settings.search_options(asked(mode="text", query=3), OWN)
