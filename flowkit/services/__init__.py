"""Services: the registry of callables ``call`` steps invoke, and the boundary around them.

:mod:`~flowkit.services.registry` finds a service by name;
:mod:`~flowkit.services.invoke` calls it (calling convention, timeouts, async);
:mod:`~flowkit.services.outputs` turns what it returned into JSON data and
checks it against a schema; :func:`current` tells a running service which step
called it. Imports :mod:`flowkit.definitions` (for messages) and below.
"""

from .calling import bind_arguments
from .context import StepContext, current
from .invoke import invoke
from .outputs import json_converter, to_json, validate_output
from .registry import (
    ServiceRegistry,
    default_registry,
    parse_import_path,
    register_service,
    service,
)

__all__ = [
    "ServiceRegistry",
    "StepContext",
    "bind_arguments",
    "current",
    "default_registry",
    "invoke",
    "json_converter",
    "parse_import_path",
    "register_service",
    "service",
    "to_json",
    "validate_output",
]
