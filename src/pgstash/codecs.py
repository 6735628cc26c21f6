"""The old home of `dumps_json`: the one JSON encoder is `pgstash.jsonvalue.dumps_json`, re-exported
here only until the vectors package imports it from there; then delete this module."""

from pgstash.jsonvalue import dumps_json

__all__ = ["dumps_json"]
