"""Expressions over JSON data: ``$references``, conditions and transform ops.

Pure functions: nothing here runs code from a definition, touches a store or
knows about steps. Imports only :mod:`flowkit.errors` and :mod:`flowkit.frozen`.
"""

from .conditions import (
    CONDITION_OPS,
    MAX_PATTERN_LENGTH,
    ConditionError,
    check_condition,
    evaluate,
    json_equal,
    pattern_error,
    search_pattern,
)
from .references import (
    SPECIAL_ROOTS,
    Reference,
    Scope,
    has_references,
    is_reference,
    lookup,
    parse_path,
    references,
    resolve,
    walk,
)
from .transforms import TRANSFORM_OPS, TransformError, apply, check_transform

__all__ = [
    "CONDITION_OPS",
    "MAX_PATTERN_LENGTH",
    "SPECIAL_ROOTS",
    "TRANSFORM_OPS",
    "ConditionError",
    "Reference",
    "Scope",
    "TransformError",
    "apply",
    "check_condition",
    "check_transform",
    "evaluate",
    "has_references",
    "is_reference",
    "json_equal",
    "lookup",
    "parse_path",
    "pattern_error",
    "references",
    "resolve",
    "search_pattern",
    "walk",
]
