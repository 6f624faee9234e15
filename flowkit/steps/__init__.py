"""The core step types, one module each, registered through :func:`flowkit.abc.register_step_type`.

Each module declares a step type's config class, its checks, its nested graphs,
how it runs and its Python-DSL builder, on the same :class:`flowkit.abc.StepType`
API that :mod:`flowkit.ai` and third-party step types use. Importing this
package registers them all.
"""

from .approval import ApprovalConfig
from .assign import AssignConfig
from .call import CallConfig, OutputSpec
from .end import EndConfig
from .halt import HaltConfig
from .loop import LoopConfig
from .parallel import ParallelConfig, Wait
from .router import Route, RouterConfig, When, when
from .sleep import SleepConfig
from .start import StartConfig
from .transform import TransformConfig, TransformOp
from .wait import WaitConfig
from .workflow import WorkflowConfig

__all__ = [
    "ApprovalConfig",
    "AssignConfig",
    "CallConfig",
    "EndConfig",
    "HaltConfig",
    "LoopConfig",
    "OutputSpec",
    "ParallelConfig",
    "Route",
    "RouterConfig",
    "SleepConfig",
    "StartConfig",
    "TransformConfig",
    "TransformOp",
    "Wait",
    "WaitConfig",
    "When",
    "WorkflowConfig",
    "when",
]
