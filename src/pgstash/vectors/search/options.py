"""`SearchOptions`: one search call's settings (the call's arguments and the index's search
settings), checked by `search_options` when made, before anything is sent.

The checks run in field order, each one reading the mode: a vector search checks `candidates`,
`limit`, then the score threshold and scan settings; a text or hybrid search its query's words
first, then `limit`, then (text) that no vector setting is given or (hybrid) the fusion's
`candidates`, `rrf_k` and `weights`, then the vector settings. Every check but the query's reads
only the settings, so a search repeating settings already found valid (the same values of the
same types) checks only its query's words (text and hybrid): `search_options` remembers them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from pgstash.validators import no_nul, positive_int
from pgstash.vectors.filters import AttributeRequirement
from pgstash.vectors.inputs import MAX_CANDIDATES

__all__ = [
    "CALL_FIELDS", "INDEX_FIELDS", "MODES", "SearchOptions", "check", "diversity", "multiplier",
    "query_bound", "search_options", "text_timeout", "words_of",
]  # fmt: skip

MODES = ("vector", "text", "hybrid")
_TERM = re.compile(r"\w+")  # a term of a text query, as its bound counts them
_SCAN_LIMITS = {"ef_search": 1000, "probes": 32768}
# the arguments of a search call, and the index's settings it runs under (PostgresVectorIndex's)
CALL_FIELDS = (
    "mode", "query", "limit", "candidates", "rrf_k", "weights", "score_threshold", "ef_search", "probes",
    "rerank", "requirements",
)  # fmt: skip
INDEX_FIELDS = ("mmr_multiplier", "mmr_diversity", "text_timeout", "max_query_terms", "max_query_characters")


# -- the index's search settings, checked when a PostgresVectorIndex is made ------------------------


def query_bound(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    positive_int(value, attribute.name, 1_000_000)


def text_timeout(_: object, __: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not (
        isinstance(value, int | float) and not isinstance(value, bool) and 0.001 <= value <= 86_400
    ):
        raise ValueError(f"text_timeout must be None or seconds from 0.001 to 86,400, got {value!r}")


def multiplier(_: object, __: attrs.Attribute[int], value: int) -> None:
    positive_int(value, "mmr_multiplier")


def diversity(_: object, __: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"mmr_diversity must be within [0, 1], got {value!r}")


def words_of(query: object, most_terms: int, most_characters: int) -> str:
    """The text of a text or hybrid search, bounded before anything is sent: at most
    `most_characters` characters and `most_terms` terms (runs of letters and digits, `\\w+`, an
    `or` included); `ts_rank_cd`'s cost grows faster than the cube of the query's terms."""
    if not isinstance(query, str):
        raise TypeError(f'mode "text" and "hybrid" search with a text query, not {type(query).__name__}')
    if len(query) > most_characters:
        raise ValueError(
            f"the query has {len(query):,} characters; a text or hybrid query holds at most "
            f"{most_characters:,} (PostgresVectorIndex(max_query_characters=...))"
        )
    terms = len(_TERM.findall(query))
    if terms > most_terms:
        raise ValueError(
            f"the query has {terms:,} terms; a text or hybrid query holds at most {most_terms:,} "
            "(PostgresVectorIndex(max_query_terms=...)): ranking grows faster than the cube of them"
        )
    return no_nul(query, "the query")


def _mode(options: SearchOptions, _: attrs.Attribute[str], mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f'mode is "vector", "text" or "hybrid", not {mode!r}')
    # a vector search's candidates (the Hamming shortlist of a quantize="binary" table) is checked
    # once the table's facts say whether it is quantized (search/vector.py, quantize.pool_size)


def _query(options: SearchOptions, _: attrs.Attribute[object], query: object) -> None:
    if options.mode != "vector":
        words_of(query, options.max_query_terms, options.max_query_characters)


def _limit(options: SearchOptions, _: attrs.Attribute[int], limit: int) -> None:
    positive_int(limit, "limit", MAX_CANDIDATES, spans=True)
    if options.mode == "vector" and options.rerank and limit * options.mmr_multiplier > MAX_CANDIDATES:
        raise ValueError(
            f"rerank=True weighs limit * mmr_multiplier = {limit} * {options.mmr_multiplier} "
            f"candidates, more than {MAX_CANDIDATES:,}: lower limit or mmr_multiplier"
        )


def _candidates(options: SearchOptions, _: attrs.Attribute[int | None], candidates: int | None) -> None:
    if options.mode != "hybrid":
        return
    chosen = options.arm
    limit = options.limit
    if not isinstance(chosen, int) or isinstance(chosen, bool) or not limit <= chosen <= MAX_CANDIDATES:
        raise ValueError(
            f"candidates must be an integer from limit ({limit}) to {MAX_CANDIDATES:,}, got {candidates!r}"
        )


def _rrf_k(options: SearchOptions, _: attrs.Attribute[int], rrf_k: int) -> None:
    if options.mode == "hybrid" and (
        not isinstance(rrf_k, int) or isinstance(rrf_k, bool) or not 0 <= rrf_k <= 1_000_000
    ):
        raise ValueError(f"rrf_k must be an integer from 0 to 1,000,000, got {rrf_k!r}")


def _weight(value: object) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    )


def _weights(options: SearchOptions, _: attrs.Attribute[Any], weights: object) -> None:
    if options.mode == "hybrid" and not (
        isinstance(weights, tuple)
        and len(weights) == 2
        and all(_weight(weight) for weight in weights)
        and any(weights)
    ):
        raise ValueError(f"weights is (vector, text): two finite numbers >= 0, not both 0; got {weights!r}")


def _score_threshold(options: SearchOptions, _: attrs.Attribute[Any], threshold: object) -> None:
    if options.mode == "text":
        if (
            any(value is not None for value in (threshold, options.ef_search, options.probes))
            or options.rerank
        ):
            raise ValueError(
                'mode="text" ranks by ts_rank_cd: score_threshold, rerank, ef_search and probes apply '
                "to vector and hybrid search"
            )
        return
    if threshold is not None and not (
        isinstance(threshold, int | float) and not isinstance(threshold, bool) and -1.0 <= threshold <= 1.0
    ):
        raise ValueError(f"score_threshold is a cosine similarity within [-1, 1], got {threshold!r}")


def _scan_setting(options: SearchOptions, attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if options.mode != "text" and value is not None:
        positive_int(value, attribute.name, _SCAN_LIMITS[attribute.name], spans=True)


@attrs.frozen(slots=True)
class SearchOptions:
    """What one `search` / `search_scored` call asked for (see `PostgresVectorIndex.search`),
    with the index's search settings (`mmr_*`, `text_timeout`, `max_query_*`) it runs under;
    made and checked by `search_options`."""

    mode: str = "vector"
    query: object = attrs.field(default=None, eq=False)
    limit: int = 8
    candidates: int | None = None
    rrf_k: int = 60
    weights: tuple[float, float] = (1.0, 1.0)
    score_threshold: float | None = None
    ef_search: int | None = None
    probes: int | None = None
    rerank: bool = False
    requirements: AttributeRequirement | None = None
    # the index's settings
    mmr_multiplier: int = 8
    mmr_diversity: float = 0.5
    text_timeout: float | None = 5.0
    max_query_terms: int = 64
    max_query_characters: int = 4_096

    @property
    def filtered(self) -> bool:
        return self.requirements is not None

    @property
    def fetched(self) -> int:
        """The rows a vector search asks the server for: `limit`, times `mmr_multiplier` to rerank."""
        return self.limit * self.mmr_multiplier if self.rerank else self.limit

    @property
    def arm(self) -> int:
        """The rows each arm of a hybrid search ranks: `candidates`, by default `max(4 * limit, 20)`."""
        return max(4 * self.limit, 20) if self.candidates is None else self.candidates

    @property
    def max_distance(self) -> float:
        """The cosine distance `score_threshold` allows (infinite without one)."""
        return math.inf if self.score_threshold is None else 1.0 - float(self.score_threshold)


Check = Callable[[SearchOptions, "attrs.Attribute[Any]", Any], None]
_FIELDS = attrs.fields(SearchOptions)
# The checks, in field order (each may read the fields before and after it, the mode first).
_CHECKS: tuple[tuple[attrs.Attribute[Any], Check], ...] = (
    (_FIELDS.mode, _mode),
    (_FIELDS.query, _query),
    (_FIELDS.limit, _limit),
    (_FIELDS.candidates, _candidates),
    (_FIELDS.rrf_k, _rrf_k),
    (_FIELDS.weights, _weights),
    (_FIELDS.score_threshold, _score_threshold),
    (_FIELDS.ef_search, _scan_setting),
    (_FIELDS.probes, _scan_setting),
)
_VALID: dict[tuple[Any, ...], bool] = {}  # settings already found valid (their values and types)
_MOST_REMEMBERED = 1024


def check(options: SearchOptions) -> None:
    """Every check of `options`, in field order (`ValueError` / `TypeError` from the first that fails)."""
    for attribute, checked in _CHECKS:
        checked(options, attribute, getattr(options, attribute.name))


def _settings_key(asked: Sequence[Any], own: Sequence[Any]) -> tuple[Any, ...] | None:
    """What every check but the query's reads (`asked` but the query and the requirements, and
    the index's settings `own`), with the type of each value (`True` is not `1`, nor `1.0`);
    None when a value is not hashable (the checks then run every time). One flat tuple (its
    parts but the last of fixed length: the weights' types, or None when not a tuple)."""
    read = (asked[0], *asked[2:10])
    weights = asked[5]
    key = (*read, *own, *map(type, read), *(map(type, weights) if type(weights) is tuple else (None,)))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _slot_setter() -> Callable[..., SearchOptions]:
    """`SearchOptions(*values)` through its slots, one line a field (as attrs writes `__init__`)."""
    names = [field.name for field in _FIELDS]
    scope: dict[str, Any] = {f"_set_{name}": SearchOptions.__dict__[name].__set__ for name in names}
    scope.update(_new=object.__new__, _cl=SearchOptions)
    source = "\n".join([
        f"def made({', '.join(names)}):",
        "    options = _new(_cl)",
        *(f"    _set_{name}(options, {name})" for name in names),
        "    return options",
    ])  # fmt: skip
    exec(compile(source, "<pgstash SearchOptions through its slots>", "exec"), scope)
    made: Callable[..., SearchOptions] = scope["made"]
    return made


_THROUGH_SLOTS = _slot_setter()
_ASKED, _OWN = len(CALL_FIELDS), len(INDEX_FIELDS)


def _made(asked: Sequence[Any], own: Sequence[Any]) -> SearchOptions:
    """`SearchOptions(*asked, *own)` (a class without validators, converters or hooks: its
    `__init__` only sets its slots), made through its slots: one per search call, and the frozen
    class's `__init__` costs about twice as much (issue 22 item 7)."""
    if len(asked) != _ASKED or len(own) != _OWN:
        return SearchOptions(*asked, *own)  # TypeError, as the class says it
    return _THROUGH_SLOTS(*asked, *own)


def search_options(asked: Sequence[Any], own: Sequence[Any]) -> SearchOptions:
    """The call's `SearchOptions` from its arguments (`asked`, in `CALL_FIELDS` order) and the
    index's settings (`own`, in `INDEX_FIELDS` order), checked (`check`): settings already found
    valid are not checked again, only a text or hybrid query's words are (`words_of`), as
    `check` would."""
    options = _made(asked, own)
    try:
        key = _settings_key(asked, own)
    except Exception:  # a value whose truth or type cannot be read: the checks say what is wrong
        key = None
    if key is None or key not in _VALID:
        check(options)
        if key is not None:
            if len(_VALID) >= _MOST_REMEMBERED:
                _VALID.clear()
            _VALID[key] = True
    elif options.mode != "vector":
        words_of(options.query, options.max_query_terms, options.max_query_characters)
    return options
