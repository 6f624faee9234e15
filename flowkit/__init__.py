"""flowkit: durable workflows in YAML or plain Python.

Import everything from here; the modules behind it are private.
"""

from ._api import resume, run
from ._clock import Clock, SystemClock
from ._config import Settings, configure
from ._context import StepContext, current
from ._definitions import (
    ApprovalConfig,
    AssignConfig,
    CallConfig,
    Condition,
    EndConfig,
    HaltConfig,
    InputDef,
    LoopConfig,
    OutputSpec,
    ParallelConfig,
    Route,
    RouterConfig,
    SourceLocation,
    StartConfig,
    StepDef,
    TransformConfig,
    TransformOp,
    WorkflowConfig,
    WorkflowDef,
)
from ._dsl import Input, Workflow, register_builder, register_method, when
from ._engine import Engine
from ._events import Event
from ._executors import Executor, InlineExecutor, ThreadExecutor
from ._graph import render as graph
from ._parse import load, parse, to_dict, to_yaml
from ._problems import Problem
from ._registry import Extension, StepType, register_extension, register_step_type
from ._results import Advance, HaltInfo, Handle, Result
from ._services import ServiceRegistry, register_service, service
from ._steps import Decision, Outcome, StepExecutor, StepRun, register_executor
from ._store import Store, connect
from ._validate import check
from ._version import __version__
from ._workflows import register
from .errors import (
    ConfigError,
    ConflictError,
    ExecutionError,
    FlowkitError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
)
from .records import Action, Entry, Execution, Status

__all__ = [
    "Action",
    "Advance",
    "ApprovalConfig",
    "AssignConfig",
    "CallConfig",
    "Clock",
    "Condition",
    "ConfigError",
    "ConflictError",
    "Decision",
    "EndConfig",
    "Engine",
    "Entry",
    "Event",
    "Execution",
    "ExecutionError",
    "Executor",
    "Extension",
    "FlowkitError",
    "HaltConfig",
    "HaltInfo",
    "Handle",
    "InlineExecutor",
    "Input",
    "InputDef",
    "LoopConfig",
    "NotFoundError",
    "Outcome",
    "OutputSpec",
    "ParallelConfig",
    "Problem",
    "Result",
    "Route",
    "RouterConfig",
    "ServiceRegistry",
    "Settings",
    "SourceLocation",
    "StartConfig",
    "Status",
    "StepContext",
    "StepDef",
    "StepExecutor",
    "StepRun",
    "StepType",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "SystemClock",
    "ThreadExecutor",
    "TransformConfig",
    "TransformOp",
    "ValidationError",
    "Workflow",
    "WorkflowConfig",
    "WorkflowDef",
    "__version__",
    "check",
    "configure",
    "connect",
    "current",
    "graph",
    "load",
    "parse",
    "register",
    "register_builder",
    "register_executor",
    "register_extension",
    "register_method",
    "register_service",
    "register_step_type",
    "resume",
    "run",
    "service",
    "to_dict",
    "to_yaml",
    "when",
]
