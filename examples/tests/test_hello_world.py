"""Testing hello_world: one step in isolation, and the whole workflow in both forms.

The fixtures come from flowkit's pytest plugin (installed with flowkit):
``run_step`` runs a single step, ``flowkit_engine`` runs whole workflows on a
fresh in-memory store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import flowkit
from examples.hello_world import workflow

YAML = Path(__file__).resolve().parents[1] / "hello_world.yml"


def test_greet_interpolates_the_name(run_step):
    result = run_step(workflow, "greet", input={"name": "Ada"})
    assert result.ctx == {"greeting": "Hello, Ada!"}
    assert result.next == "done"


def test_done_returns_the_greeting_and_the_name(run_step):
    result = run_step(workflow, "done", ctx={"greeting": "Hi!"}, input={"name": "Bo"})
    assert result.output == {"greeting": "Hi!", "name": "Bo"}
    assert result.next is None  # an end step finishes the workflow


@pytest.mark.parametrize("form", [workflow, flowkit.load(YAML)], ids=["python", "yaml"])
def test_the_whole_workflow(flowkit_engine, form):
    assert flowkit_engine.run(form, {"name": "Ada"}).output == {
        "greeting": "Hello, Ada!",
        "name": "Ada",
    }
    assert flowkit_engine.run(form).output == {"greeting": "Hello, World!", "name": "World"}


def test_a_wrong_input_type_is_refused(flowkit_engine):
    with pytest.raises(flowkit.ValidationError, match="name"):
        flowkit_engine.run(workflow, {"name": 42})
