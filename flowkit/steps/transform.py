"""``transform``: applies ``expression`` ops in order to ``input`` (default: all of ctx).

Ops (``map``, ``select``, ``pluck``, ``sort``…) are data, never code; see
:mod:`flowkit.expressions.transforms`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..abc import IMPLICIT, Builder, Outcome, Runtime, StepType, register_step_type
from ..definitions import EXPR, OUTPUT, PATH, InvalidValue, StepDef, converter
from ..definitions.convert import freeze_value
from ..definitions.fields import non_empty, optional_non_empty
from ..expressions import apply, check_transform, parse_path, walk
from ..frozen import freeze, thaw

__all__ = ["Transform", "TransformConfig", "TransformOp", "transform"]


@attrs.frozen(kw_only=True)
class TransformOp:
    """One operation of a transform expression, such as ``pluck: price``."""

    op: str = attrs.field(validator=non_empty)
    arg: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})


def _transform_ops(value: Any) -> tuple[TransformOp, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class TransformConfig:
    """``transform``: applies ``expression`` ops in order to ``input`` (default: ctx)."""

    expression: tuple[TransformOp, ...] = attrs.field(converter=_transform_ops)
    output: str = attrs.field(validator=non_empty, metadata={OUTPUT: True})
    input: str | None = attrs.field(
        default=None, validator=optional_non_empty, metadata={PATH: True}
    )


def _structure_ops(value: Any, _type: Any) -> tuple[TransformOp, ...]:
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list) and all(
        isinstance(item, Mapping) and len(item) == 1 for item in value
    ):
        pairs = [next(iter(item.items())) for item in value]
    else:
        raise InvalidValue(
            f"expected a mapping of op: argument, or a list of one-key mappings, got {value!r}"
        )
    return tuple(TransformOp(op=str(op), arg=freeze_value(arg)) for op, arg in pairs)


def _unstructure_ops(ops: tuple[TransformOp, ...]) -> Any:
    names = [op.op for op in ops]
    if len(set(names)) == len(names):
        return {op.op: thaw(op.arg) for op in ops}
    return [{op.op: thaw(op.arg)} for op in ops]


converter.register_structure_hook_func(lambda t: t == tuple[TransformOp, ...], _structure_ops)
converter.register_unstructure_hook_func(lambda t: t == tuple[TransformOp, ...], _unstructure_ops)


def transform(
    graph: Builder,
    id: str,
    *,
    expression: Mapping[str, Any] | Sequence[tuple[str, Any]],
    output: str,
    input: str | None = None,
    next: Any = IMPLICIT,
    on_error: str | None = None,
) -> StepDef:
    """A ``transform`` step applying ``expression`` ops (``{"pluck": "price"}``) in order."""
    pairs = expression.items() if isinstance(expression, Mapping) else expression
    ops = tuple(TransformOp(op=op, arg=arg) for op, arg in pairs)
    config = graph.config(TransformConfig, id, expression=ops, output=output, input=input)
    return graph.add_step(id, "transform", config, next, on_error)


class Transform(StepType):
    name = "transform"
    config = TransformConfig
    shape = "data"
    build = staticmethod(transform)

    def check(self, step: StepDef) -> list[str]:
        config: TransformConfig = step.config
        return [
            f"expression: {message}"
            for op in config.expression
            for message in check_transform(op.op, op.arg)
        ]

    def run(self, run: Runtime) -> Outcome:
        config: TransformConfig = run.step.config
        if config.input is None:
            data: Any = dict(run.scope.ctx)
        else:
            ref = parse_path(config.input)
            data = None if ref is None else walk(run.scope.root(ref.root), ".".join(ref.path))
        ops = [(op.op, op.arg) for op in config.expression]
        result = apply(data, ops, run.scope)
        return Outcome(target=run.step.next, updates={config.output: result}, output=result)


register_step_type(Transform())
