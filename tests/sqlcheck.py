"""Moved to tests/support/sqlcheck.py: import from there (this name is kept while branches written
before tests/support are merged; delete it once nothing imports it)."""

from tests.support.sqlcheck import (
    _BUILD,
    EMPTY_BINARY_COPY,
    TEMPLATE_SETUP,
    TEMPLATE_SLOTS,
    TEMPLATE_VARIANTS,
    composed,
    fragment_hosts,
    prepare_all,
    sample_fragment,
    statements_of,
)

__all__ = [
    "EMPTY_BINARY_COPY",
    "TEMPLATE_SETUP",
    "TEMPLATE_SLOTS",
    "TEMPLATE_VARIANTS",
    "_BUILD",
    "composed",
    "fragment_hosts",
    "prepare_all",
    "sample_fragment",
    "statements_of",
]
