"""Workflow definitions: the typed model, YAML in and out, validation, graph rendering.

Everything here is about what a workflow *says*; nothing runs. What a step type
contributes to definitions (its config class, checks, nested graphs) is read
through the registry in :mod:`flowkit.definitions.kinds`; step types register
there through :func:`flowkit.abc.register_step_type`.

Imports :mod:`flowkit.errors`, :mod:`flowkit.frozen`, :mod:`flowkit.records`
and :mod:`flowkit.expressions` only.
"""

from .convert import InvalidValue, converter, error_messages
from .fields import (
    EXPR,
    KEY,
    OUTPUT,
    PATH,
    SECONDS,
    STEPS,
    TARGET,
    Duration,
    duration,
    seconds,
    target,
)
from .graph import Edge, condition_text, edges, render
from .inputs import validate_input
from .kinds import (
    BODY,
    BRANCHES,
    Extension,
    Nested,
    ReferenceCheck,
    StepKind,
    defines_of,
    register_check,
    register_extension,
)
from .loading import MAX_ALIAS_NODES, Source, check, load, parse, to_dict, to_yaml
from .model import INPUT_TYPES, Condition, InputDef, SourceLocation, StepDef, WorkflowDef
from .problems import Problem, did_you_mean
from .validate import NAME, RESERVED, all_steps
from .workflows import WorkflowRegistry, default_registry, definition_hash, register

__all__ = [
    "BODY",
    "BRANCHES",
    "EXPR",
    "INPUT_TYPES",
    "KEY",
    "MAX_ALIAS_NODES",
    "NAME",
    "OUTPUT",
    "PATH",
    "RESERVED",
    "SECONDS",
    "STEPS",
    "TARGET",
    "Condition",
    "Duration",
    "Edge",
    "Extension",
    "InputDef",
    "InvalidValue",
    "Nested",
    "Problem",
    "ReferenceCheck",
    "Source",
    "SourceLocation",
    "StepDef",
    "StepKind",
    "WorkflowDef",
    "WorkflowRegistry",
    "all_steps",
    "check",
    "condition_text",
    "converter",
    "default_registry",
    "defines_of",
    "definition_hash",
    "did_you_mean",
    "duration",
    "edges",
    "error_messages",
    "load",
    "parse",
    "register",
    "register_check",
    "register_extension",
    "render",
    "seconds",
    "target",
    "to_dict",
    "to_yaml",
    "validate_input",
]
