"""Models built from stored payloads without cattrs' bookkeeping (`vectors/builders.py`): only
where that is the object the converter's own hook makes, and then for every payload the same
object, or (through the hook) the same error; `SearchOptions` made through its slots equal to its
`__init__`'s."""

from __future__ import annotations

import math
from typing import Any

import attrs
import cattrs
import pytest
from cattrs.gen import make_dict_structure_fn, override
from hypothesis import given, settings
from hypothesis import strategies as st

from pgstash.converters import make_converter
from pgstash.errors import StoredDataError
from pgstash.vectors.builders import plain_builder
from pgstash.vectors.payloads import read_back, reader
from pgstash.vectors.search import options

pytestmark = pytest.mark.unit


@attrs.frozen
class Frozen:
    identifier: str
    rank: int
    score: float
    flag: bool
    shelf: str = ""


@attrs.define
class Mutable:
    name: str
    count: int = 0


@attrs.frozen
class Nested:
    inner: Frozen
    name: str


@attrs.frozen
class Validated:
    name: str = attrs.field(validator=attrs.validators.min_len(1))


def _upper(value: str) -> str:
    return value.upper()


@attrs.frozen
class Converted:
    name: str = attrs.field(converter=_upper)


@attrs.frozen
class PostInit:
    name: str

    def __attrs_post_init__(self) -> None:
        pass


@attrs.frozen(cache_hash=True)
class Hashed:
    name: str


@attrs.frozen(slots=False)
class Dicted:
    name: str


def _builder(converter: cattrs.Converter, model: type) -> Any:
    return plain_builder(converter, model, converter.get_structure_hook(model))


def test_a_plain_attrs_class_is_built_directly_by_the_default_converter() -> None:
    converter = make_converter()
    assert _builder(converter, Frozen) is not None
    assert _builder(converter, Mutable) is not None
    assert _builder(converter, Frozen) is _builder(converter, Frozen)  # made once per hook


@pytest.mark.parametrize("model", [Nested, Validated, Converted, PostInit, Hashed, Dicted])
def test_a_class_whose_init_does_more_than_set_its_fields_goes_through_the_hook(model: type) -> None:
    assert _builder(make_converter(), model) is None


def test_a_hook_of_the_callers_own_goes_through_the_hook() -> None:
    renamed = make_converter()
    renamed.register_structure_hook(
        Frozen, make_dict_structure_fn(Frozen, renamed, identifier=override(rename="id"))
    )
    assert _builder(renamed, Frozen) is None
    assert reader(renamed, Frozen, "t")([{"id": "a", "rank": 1, "score": 0.5, "flag": True}]) == [
        Frozen("a", 1, 0.5, True)
    ]
    own = make_converter()
    own.register_structure_hook(Frozen, lambda value, _: Frozen("own", 0, 0.0, False))
    assert _builder(own, Frozen) is None
    assert _builder(make_converter(strict=True), Frozen) is None  # its scalar hooks are its own
    forbidding = make_converter()
    forbidding.forbid_extra_keys = True
    assert _builder(forbidding, Frozen) is None


def _same(built: list[Any], expected: list[Any]) -> bool:
    """The same objects: of the same class, each field of the same type and representation."""
    return len(built) == len(expected) and all(
        type(mine) is type(theirs)
        and all(
            type(getattr(mine, field.name)) is type(getattr(theirs, field.name))
            and repr(getattr(mine, field.name)) == repr(getattr(theirs, field.name))
            for field in attrs.fields(type(mine))
        )
        for mine, theirs in zip(built, expected, strict=True)
    )


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5,
)
_FITTING = st.fixed_dictionaries(
    {
        "identifier": st.text(),
        "rank": st.integers(),
        "score": st.floats(allow_nan=False),
        "flag": st.booleans(),
    },
    optional={"shelf": st.text(), "extra": _JSON},
)
_ANY = st.dictionaries(st.sampled_from(["identifier", "rank", "score", "flag", "shelf", "extra"]), _JSON)


@settings(max_examples=300, deadline=None)
@given(payloads=st.lists(_FITTING | _ANY, max_size=4))
def test_built_models_are_the_hooks_or_raise_its_error(payloads: list[dict[str, Any]]) -> None:
    converter = make_converter()
    assert _builder(converter, Frozen) is not None
    try:
        expected = [read_back(converter, payload, Frozen, "t") for payload in payloads]
    except StoredDataError as error:
        with pytest.raises(StoredDataError) as raised:
            reader(converter, Frozen, "t")(payloads)
        assert str(raised.value) == str(error)
        return
    assert _same(reader(converter, Frozen, "t")(payloads), expected)


@settings(max_examples=200, deadline=None)
@given(
    name=st.text() | st.integers() | st.floats(allow_nan=False),
    count=st.none() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
)
def test_a_mutable_class_is_built_as_the_hook_builds_it(name: object, count: object) -> None:
    converter = make_converter()
    payload: dict[str, object] = {"name": name} if count is None else {"name": name, "count": count}
    try:
        expected = [read_back(converter, payload, Mutable, "t")]
    except StoredDataError as error:
        with pytest.raises(StoredDataError) as raised:
            reader(converter, Mutable, "t")([payload])
        assert str(raised.value) == str(error)
        return
    assert _same(reader(converter, Mutable, "t")([payload]), expected)


@given(
    limit=st.integers() | st.booleans(),
    score_threshold=st.none() | st.floats(allow_nan=False),
    rerank=st.booleans(),
)
def test_search_options_through_slots_equal_its_init(
    limit: object, score_threshold: float | None, rerank: bool
) -> None:
    query = [1.0, 2.0]
    asked: tuple[Any, ...] = (
        "vector", query, limit, None, 60, (1.0, 1.0), score_threshold, None, None, rerank, None,
    )  # fmt: skip
    own: tuple[Any, ...] = (8, 0.5, 5.0, 64, 4096)
    made = options._made(asked, own)
    expected = options.SearchOptions(*asked, *own)
    assert made == expected and made.query is query
    assert all(
        getattr(made, field.name) is getattr(expected, field.name)
        or (isinstance(getattr(made, field.name), float) and math.isnan(getattr(made, field.name)))
        for field in attrs.fields(options.SearchOptions)
    )
    assert options._made(asked[:-1], own) == options.SearchOptions(*asked[:-1], *own)  # its __init__
