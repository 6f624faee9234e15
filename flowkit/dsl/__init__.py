"""The Python DSL (SPEC §5): decorated functions and a step-graph builder.

``flowkit.Workflow`` compiles into the same :class:`~flowkit.definitions.WorkflowDef`
as the YAML parser. Each step type brings its own builder (``StepType.build``);
``register_method`` adds workflow methods that are not steps (``wf.agents``).
"""

from ..abc import IMPLICIT
from ..steps.router import When, when
from .workflow import Graph, Input, Workflow, caller, register_method

__all__ = ["IMPLICIT", "Graph", "Input", "When", "Workflow", "caller", "register_method", "when"]
