"""Every example exists in YAML and in Python, and both forms give equal definitions.

``examples/<name>.yml`` is loaded (and validated) by the YAML parser,
``examples/<name>.py`` defines ``workflow = flowkit.Workflow(...)``; the two
definitions must be equal, and ``flowkit export examples.<name>:workflow``
must print YAML that parses back to the same definition.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from click.testing import CliRunner

import flowkit
from flowkit.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NAMES = sorted(path.stem for path in EXAMPLES.glob("*.yml"))


def python_twin(name: str) -> flowkit.Workflow:
    module = importlib.import_module(f"examples.{name}")
    workflow = module.workflow
    assert isinstance(workflow, flowkit.Workflow)
    return workflow


def test_every_yaml_example_has_a_python_twin() -> None:
    assert len(NAMES) == 11
    assert [name for name in NAMES if not (EXAMPLES / f"{name}.py").is_file()] == []


@pytest.mark.parametrize("name", NAMES)
def test_both_forms_give_equal_definitions(name: str) -> None:
    from_yaml = flowkit.load(EXAMPLES / f"{name}.yml")
    from_python = python_twin(name).definition
    assert from_python == from_yaml
    # equal down to the order of keys in mappings, which YAML output follows
    assert flowkit.to_yaml(from_python) == flowkit.to_yaml(from_yaml)


@pytest.mark.parametrize("name", NAMES)
def test_python_steps_point_at_the_python_file(name: str) -> None:
    source = EXAMPLES / f"{name}.py"
    for step in python_twin(name).definition.steps[1:]:  # the first is the added start step
        assert step.source is not None
        assert step.source.file == str(source)
        assert step.source.line is not None


@pytest.mark.parametrize("name", NAMES)
def test_export_prints_yaml_that_parses_back_equal(name: str) -> None:
    result = CliRunner().invoke(main, ["export", f"examples.{name}:workflow"])
    assert result.exit_code == 0, result.output
    exported = flowkit.parse(result.output)
    assert exported == python_twin(name).definition
    assert exported == flowkit.load(EXAMPLES / f"{name}.yml")
