"""A step type added from outside flowkit, in one file (examples/extending/quorum.py).

It gets everything a core step type gets, through the public step-type API
alone: YAML and the Python DSL give the same definition, the validator checks
its config and its edge, the graph renderer draws it, the engine runs, halts
and resumes it on a real store, and the CLI finds it with ``-m``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

import flowkit
from flowkit.cli import main
from flowkit.definitions import kinds
from flowkit.records import Action

ROOT = Path(__file__).resolve().parents[1]
YAML = ROOT / "examples" / "extending" / "release_vote.yml"


@pytest.fixture(scope="module", autouse=True)
def quorum() -> Iterator[ModuleType]:
    """The step type module, registered for this module's tests only."""
    module = importlib.import_module("examples.extending.quorum")  # importing registers it
    flowkit.register_step_type(module.Quorum())  # again, after an earlier module's teardown
    yield module
    kinds._kinds.pop("quorum")  # private: the registry has no way to forget a type


@pytest.fixture
def python_form() -> flowkit.Workflow:
    workflow: flowkit.Workflow = importlib.import_module("examples.extending.release_vote").workflow
    return workflow


@pytest.fixture(params=["memory", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[flowkit.Engine]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/runs.db"
    store = flowkit.connect(url, warn=False) if request.param == "memory" else flowkit.connect(url)
    with flowkit.Engine(store=store, executor="inline") as engine:
        yield engine
    store.close()


def test_yaml_and_python_give_the_same_definition(
    quorum: ModuleType, python_form: flowkit.Workflow
) -> None:
    from_yaml = flowkit.load(YAML)
    assert python_form.definition == from_yaml
    assert flowkit.to_yaml(python_form.definition) == flowkit.to_yaml(from_yaml)
    vote = from_yaml.step("vote")
    assert vote is not None
    assert vote.config == quorum.QuorumConfig(
        voters=("ana", "ben", "cy"), needed=2, prompt="Release $input.version?", on_veto="held"
    )
    assert flowkit.parse(flowkit.to_dict(from_yaml)) == from_yaml


def test_the_validator_checks_its_config_its_keys_and_its_edge() -> None:
    problems = flowkit.check(
        {
            "id": "w",
            "steps": [
                {"id": "start", "type": "start", "next": "vote"},
                {
                    "id": "vote",
                    "type": "quorum",
                    "voters": ["ana", "ana"],
                    "needed": 3,
                    "on_veto": "hled",
                    "next": "held",
                },
                {"id": "held", "type": "end"},
            ],
        }
    )
    assert [(getattr(p, "step_id", None), getattr(p, "message", p)) for p in problems] == [
        ("vote", "needed: 3 votes can never come from 2 voters"),
        ("vote", "voters: someone is listed twice"),
        ("vote", "on_veto: no step 'hled' (did you mean 'held'?)"),
    ]
    [typo] = flowkit.check(
        "id: w\nsteps:\n  - {id: vote, type: quorum, voters: [a], needed: 1, neded: 2}\n"
    )
    assert "unknown key 'neded' (did you mean 'needed'?)" in typo
    assert "step 'vote'" in typo


def test_a_reference_to_its_output_is_defined_after_it() -> None:
    wf = flowkit.load(YAML)
    assert flowkit.check(wf) == []
    [problem] = flowkit.check(
        {
            "id": "w",
            "steps": [
                {"id": "start", "type": "start", "next": "early"},
                {"id": "early", "type": "end", "result": "$votes"},
            ],
        }
    )
    assert "'$votes' reads 'votes', which no step sets" in problem


def test_the_graph_draws_it_and_its_veto_edge() -> None:
    mermaid = flowkit.graph(flowkit.load(YAML))
    assert 's1{{"vote<br/>quorum"}}' in mermaid
    assert 's1 -->|"on_veto"| s3' in mermaid
    dot = flowkit.graph(flowkit.load(YAML), "dot")
    assert 's1 [label="vote\\nquorum", shape=hexagon];' in dot


def test_it_halts_and_each_vote_resumes_it(
    engine: flowkit.Engine, python_form: flowkit.Workflow
) -> None:
    halted = engine.run(python_form, {"version": "2.0"})
    assert halted.halted
    assert halted.halt is not None
    assert halted.halt.prompt == "Release 2.0?"
    assert halted.halt.data["approvers"] == ["ana", "ben", "cy"]

    with pytest.raises(flowkit.ExecutionError, match="only ana, ben, cy may vote"):
        engine.resume(halted.execution_id, approved=True, by="mallory")
    assert engine.load(halted.execution_id).seq == 2  # the refused vote wrote nothing

    first = engine.resume(halted.execution_id, approved=True, by="ana")
    assert first.halted
    assert first.halt is not None
    assert first.halt.data["approvers"] == ["ben", "cy"]
    with pytest.raises(flowkit.ExecutionError, match="ana has voted already"):
        engine.resume(halted.execution_id, approved=True, by="ana")

    done = engine.resume(halted.execution_id, approved=True, by="cy")
    assert done.completed
    assert done.output == {"version": "2.0", "released": True, "votes": {"ana": True, "cy": True}}
    entries = engine.store.entries(halted.execution_id)
    assert [(e.step_id, e.action) for e in entries] == [
        ("start", Action.COMPLETED),
        ("vote", Action.HALTED),
        ("vote", Action.RESUMED),
        ("vote", Action.RESUMED),
        ("released", Action.COMPLETED),
    ]


def test_a_veto_takes_its_on_veto_edge(engine: flowkit.Engine) -> None:
    halted = engine.run(flowkit.load(YAML), {"version": "2.1"})
    vetoed = engine.resume(halted.execution_id, approved=False, by="ben")
    assert vetoed.completed
    assert vetoed.output == {"version": "2.1", "released": False}


def test_the_cli_finds_it_with_an_import(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/cli.db"
    imports = ["-m", "examples.extending.quorum"]
    runner = CliRunner()
    ran = runner.invoke(
        main, ["run", str(YAML), "-i", "version=3.0", "--store", store, "--json", *imports]
    )
    assert ran.exit_code == 0, ran.output
    execution_id = json.loads(ran.output)["execution_id"]
    for voter in ("ana", "ben"):
        resumed = runner.invoke(
            main,
            [
                *("resume", execution_id, "--approve", "--by", voter, "--store", store),
                *("--json", "--workflow", str(YAML), *imports),
            ],
        )
        assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.output)["status"] == "completed"
    assert json.loads(resumed.output)["output"]["votes"] == {"ana": True, "ben": True}
