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
    """Check workflow FILES and print every problem (exit 1 if any).

    Warnings are printed too; they leave the exit status at 0.
    """
    if services:
        import_modules(services)
    report: dict[str, list[str]] = {}
    for file in files:
        try:
            problems = check(file, warnings=True)
        except FlowkitError as exc:
            problems = [str(exc) if file in str(exc) else f"{file}: {exc}"]
        if services and not _errors(problems):
            problems += _service_problems(file)
        report[file] = problems
    errors = sum(len(_errors(problems)) for problems in report.values())
    warnings = sum(len(problems) for problems in report.values()) - errors
    if as_json:
        echo_json(
            {
                "valid": errors == 0,
                "files": {
                    file: [_problem_json(problem) for problem in problems]
                    for file, problems in report.items()
                },
            }
        )
    else:
        for file, problems in report.items():
            if not _errors(problems):
                click.secho(f"{file}: ok", fg="green")
            for problem in problems:
                severity = _severity(problem)
                click.secho(f"{severity}: {problem}", fg=_COLORS[severity])
        if errors or warnings:
            click.echo(_summary(errors, warnings), err=True)
    if errors:
        sys.exit(1)


_COLORS = {"error": "red", "warning": "yellow"}


def _severity(problem: str) -> str:
    """``error`` or ``warning``; a plain message (a file that cannot be read) is an error."""
    severity: str = getattr(problem, "severity", "error")
    return severity


def _errors(problems: list[str]) -> list[str]:
    return [problem for problem in problems if _severity(problem) == "error"]


def _summary(errors: int, warnings: int) -> str:
    """``2 problems found, 1 warning``."""
    counts = []
    if errors:
        counts.append(f"{errors} problem{'s' if errors != 1 else ''} found")
    if warnings:
        counts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return ", ".join(counts)


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
    return to_json() if callable(to_json) else {"severity": "error", "message": problem}


@main.command()
@click.argument("target", metavar="FILE_OR_MODULE:ATTR")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
    help="Mermaid flowchart or Graphviz DOT.",
)
@handles_errors
def graph(target: str, fmt: str) -> None:
    """Print the step graph of a workflow: a YAML FILE or a Python MODULE:ATTR."""
    workflow = load_target(target)
    click.echo(render(parse(getattr(workflow, "definition", workflow)), fmt), nl=False)


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
