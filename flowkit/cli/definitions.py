"""Commands on definitions: ``flowkit validate``, ``flowkit graph``, ``flowkit export``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from ..definitions import Problem, WorkflowDef, all_steps, check, parse, render, to_yaml
from ..errors import ConfigError, FlowkitError
from ..services import default_registry
from ..steps.call import CallConfig
from .app import echo_json, handles_errors, import_modules, json_option, load_target, main


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--services",
    multiple=True,
    metavar="MODULE",
    help="Import MODULE and check that every call step's service and method exist.",
)
@json_option
@handles_errors
def validate(files: Sequence[str], services: Sequence[str], as_json: bool) -> None:
    """Check workflow FILES and print every problem (exit 1 if any)."""
    if services:
        import_modules(services)
    report: dict[str, list[str]] = {}
    for file in files:
        try:
            problems = check(file)
        except FlowkitError as exc:
            problems = [str(exc) if file in str(exc) else f"{file}: {exc}"]
        if services and not problems:
            problems = _service_problems(file)
        report[file] = problems
    total = sum(len(problems) for problems in report.values())
    if as_json:
        echo_json(
            {
                "valid": total == 0,
                "files": {
                    file: [_problem_json(problem) for problem in problems]
                    for file, problems in report.items()
                },
            }
        )
    else:
        for file, problems in report.items():
            if not problems:
                click.secho(f"{file}: ok", fg="green")
            for problem in problems:
                click.secho(f"error: {problem}", fg="red")
        if total:
            click.echo(f"{total} problem{'s' if total != 1 else ''} found", err=True)
    if total:
        sys.exit(1)


def _service_problems(file: str) -> list[str]:
    wf = parse(file)
    problems: list[str] = []
    for path, step in all_steps(wf.steps):
        if isinstance(step.config, CallConfig):
            try:
                default_registry.resolve(step.config.service, step.config.method)
            except FlowkitError as exc:
                problems.append(
                    Problem(str(exc), workflow_id=wf.id, step_id=path, location=step.source)
                )
    return problems


def _problem_json(problem: str) -> Any:
    to_json = getattr(problem, "to_json", None)
    return to_json() if callable(to_json) else {"message": problem}


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
    help="Mermaid flowchart or Graphviz DOT.",
)
@handles_errors
def graph(file: str, fmt: str) -> None:
    """Print the step graph of workflow FILE."""
    click.echo(render(parse(file), fmt), nl=False)


@main.command()
@click.argument("target", metavar="MODULE:ATTR")
@handles_errors
def export(target: str) -> None:
    """Print the YAML of a workflow written in Python."""
    workflow = load_target(target)
    definition = getattr(workflow, "definition", workflow)
    if not isinstance(definition, WorkflowDef):
        raise ConfigError(f"'{target}' is not a workflow (a flowkit.Workflow or WorkflowDef)")
    click.echo(to_yaml(definition), nl=False)
