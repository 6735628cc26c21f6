"""A search statement remembered by its shape: composed once, then each call binds its values.

`compose` puts a statement together from its template, its slots and its fragments on every
call (its text is remembered per shape, but the fragments' values are gathered, the splice
points and parameters checked and the scan gate composed around the requirements each time).
A search repeats a handful of shapes: its template (`vectors_search`, its exact twin, hybrid,
binary), the table, the requirements' SQL (their values bound, never spliced) and which scan gate
(`gate.py`: by the settings the call sets), if any, wraps them. `statement` composes a shape once
with markers in place of its values, notes where each `$n` comes from (a named value, the n-th
value of the requirements, a setting of the gate), and afterwards only binds: the same SQL text
and the same arguments, in the same order, as composing it again.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from pgstash.sql.catalogue import Query
from pgstash.sql.composer import Fragment, compose
from pgstash.sql.statements import Statement, checked
from pgstash.sql.templates import SlotValue
from pgstash.vectors.gate import GATE_SETTINGS, gate, gate_shape, gate_values
from pgstash.vectors.shapes import Marker

__all__ = ["Plan", "shaped", "statement"]

_VALUE, _REQUIRED, _GATE = 0, 1, 2  # where a `$n` comes from: a named value, the requirements, the gate
_MOST_PLANS = 4096


def _named(plan: Plan) -> Callable[[Mapping[str, Any]], tuple[Any, ...]] | None:
    if len(plan.sources) < 2 or any(source != _VALUE for source, _ in plan.sources):
        return None
    return operator.itemgetter(*(key for _, key in plan.sources))


@attrs.frozen(slots=True)
class Plan:
    """One composed shape: the statement's name, kind, text and route, and each `$n`'s source."""

    name: str
    kind: str
    sql: str
    read: bool
    sources: tuple[tuple[int, Any], ...]
    # every `$n` a named value (two or more): their tuple in one C call (an unfiltered search)
    named: Callable[[Mapping[str, Any]], tuple[Any, ...]] | None = attrs.field(
        default=attrs.Factory(_named, takes_self=True), init=False, eq=False, repr=False
    )

    def bind(
        self, values: Mapping[str, Any], required: Sequence[Any], gate: Mapping[str, Any] | None
    ) -> Statement:
        if self.named is not None:
            return checked(self.name, self.kind, self.sql, self.named(values), self.read)
        args = tuple([
            values[key] if source == _VALUE else required[key] if source == _REQUIRED else gate[key]  # type: ignore[index]
            for source, key in self.sources
        ])  # fmt: skip
        return checked(self.name, self.kind, self.sql, args, self.read)


_PLANS: dict[tuple[Any, ...], Plan] = {}


def statement(
    template: Query,
    slots: Mapping[str, SlotValue],
    requirements: Fragment,
    values: Mapping[str, Any],
    settings: Mapping[str, int | None] | None,
) -> Statement:
    """`template` composed with `slots` (those it has), `requirements` at its `{requirements}`
    point (inside the scan gate with `settings` when given) and the `values` it takes, as
    `compose` would: composed once per shape, bound every call."""
    plan = shaped(template, slots, requirements, values, settings)
    return plan.bind(values, requirements.args, None if settings is None else gate_values(settings))


def shaped(
    template: Query,
    slots: Mapping[str, SlotValue],
    requirements: Fragment,
    values: Mapping[str, Any],
    settings: Mapping[str, int | None] | None,
) -> Plan:
    """The plan of `statement`'s shape (composed the first time): its `bind` makes the statement."""
    shape = None if settings is None else gate_shape(settings)
    key = (
        template.name, tuple(slots.items()), requirements.sql, len(requirements.args), tuple(values),
        None if shape is None else shape.name,
    )  # fmt: skip
    plan = _PLANS.get(key)
    if plan is None:
        plan = _plan(template, slots, requirements, values, shape)
        if len(_PLANS) >= _MOST_PLANS:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


def _plan(
    template: Query,
    slots: Mapping[str, SlotValue],
    requirements: Fragment,
    values: Mapping[str, Any],
    shape: Query | None,
) -> Plan:
    places = range(len(requirements.args))
    marked = Fragment(requirements.sql, [Marker(_REQUIRED, place) for place in places])
    if shape is not None:  # the gate that sets the call's settings (`gate_shape`)
        marked = gate(marked, {name: Marker(_GATE, name) for name in GATE_SETTINGS}, shape)
    composed = compose(
        template,
        slots={point: value for point, value in slots.items() if point in template.splice_points},
        fragments={"requirements": marked},
        **{name: Marker(_VALUE, name) for name in values if name in template.parameters},
    )
    sources = tuple((marker.source, marker.key) for marker in composed.args)
    return Plan(composed.name, composed.kind, composed.sql, composed.read, sources)
