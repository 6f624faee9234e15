"""Commands that move executions: ``flowkit run``, ``resume``, ``retry``, ``cancel``,
``signal``, ``recover``, ``wake``, ``worker``."""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable, Collection, Sequence
from typing import Any

import click

from ..config import settings
from ..definitions import WorkflowDef
from ..engine import Result, Sweep
from ..errors import ConfigError
from .app import (
    echo_json,
    handles_errors,
    import_option,
    json_option,
    load_target,
    log_format_option,
    log_level_option,
    log_options,
    main,
    open_engine,
    store_option,
)


def _parse_input(
    raw_json: str | None, pairs: Sequence[str], text_keys: Collection[str] = ()
) -> dict[str, Any]:
    """The input from ``--input`` and ``-i`` pairs; a pair's value is JSON when it parses,
    else text, and always text for the ``text_keys`` (inputs declared ``string``)."""
    data: dict[str, Any] = {}
    if raw_json is not None:
        try:
            loaded = json.loads(raw_json)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--input is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError("--input must be a JSON object, e.g. '{\"amount\": 250}'")
        data.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"-i expects key=value, got '{pair}'")
        if key in text_keys:
            data[key] = value
            continue
        try:
            data[key] = json.loads(value)
        except json.JSONDecodeError:
            data[key] = value
    return data


def _text_inputs(workflow: Any) -> set[str]:
    """The names of the inputs a workflow declares as ``string``."""
    definition = getattr(workflow, "definition", workflow)
    if not isinstance(definition, WorkflowDef):
        return set()
    return {spec.name for spec in definition.inputs if spec.type == "string"}


def _resume_options(target: str | None, store_url: str | None, imports: Sequence[str]) -> str:
    """The options a ``flowkit resume`` in another process needs to find this execution."""
    parts = [f"-m {shlex.quote(name)}" for name in imports]
    if target is not None:
        parts.append(f"--workflow {shlex.quote(target)}")
    if store_url is not None:
        parts.append(f"--store {shlex.quote(store_url)}")
    return "".join(f" {part}" for part in parts)


workflow_option = click.option(
    "--workflow",
    "workflow_target",
    metavar="FILE_OR_MODULE:ATTR",
    help="The workflow's definition, when it is not configured.",
)


def _print_result(result: Result, as_json: bool, resume_options: str = "") -> None:
    if as_json:
        echo_json(
            {
                "execution_id": result.execution_id,
                "workflow_id": result.workflow_id,
                "status": result.status.value,
                "output": result.output,
                "error": result.error,
                "halt": None if result.halt is None else result.halt.data,
            }
        )
    else:
        colour = {"completed": "green", "halted": "yellow", "failed": "red"}.get(
            result.status.value, "white"
        )
        click.secho(f"{result.status.value}: {result.execution_id}", fg=colour, bold=True)
        if result.completed:
            click.echo(json.dumps(result.output, indent=2, ensure_ascii=False))
        elif result.failed:
            click.echo(f"error: {result.error}")
        elif result.halt is not None:
            if result.halt.prompt:
                click.echo(f"waiting: {result.halt.prompt}")
            command = f"flowkit resume {result.execution_id}"
            if "approvers" in result.halt.data:  # an approval: it needs a decision
                approvers = result.halt.data["approvers"] or []
                by = f" --by {shlex.quote(str(approvers[0]))}" if approvers else ""
                click.echo(
                    f"resume with: {command} --approve{by}{resume_options}   "
                    f"(or --reject; --response JSON adds data)"
                )
            else:
                click.echo(f"resume with: {command}{resume_options}   (--response JSON adds data)")
    if result.failed:
        sys.exit(1)


def _watch(engine: Any) -> Callable[[], None]:
    from rich.console import Console

    console = Console(stderr=True)
    styles = {"completed": "green", "failed": "red", "halted": "yellow", "retrying": "magenta"}

    def show(event: Any) -> None:
        kind = event.name.split(".", 1)[1]
        style = styles.get(kind, "cyan")
        where = event.step_id or event.workflow_id
        detail = event.payload.get("error") or ""
        stamp = event.timestamp.strftime("%H:%M:%S.%f")[:-3]
        console.print(f"[dim]{stamp}[/] [{style}]{event.name:<20}[/] {where} [red]{detail}[/]")

    unsubscribe: Callable[[], None] = engine.subscribe(show)
    return unsubscribe


@main.command()
@click.argument("target", metavar="FILE_OR_MODULE:ATTR")
@click.option("--input", "raw_input", metavar="JSON", help="The input as a JSON object.")
@click.option(
    "-i", "pairs", multiple=True, metavar="KEY=VALUE", help="One input value (JSON or text)."
)
@click.option("--watch", is_flag=True, help="Show each step live.")
@store_option
@import_option
@json_option
@log_options("warning")
@handles_errors
def run(
    target: str,
    raw_input: str | None,
    pairs: Sequence[str],
    watch: bool,
    store_url: str | None,
    imports: Sequence[str],
    as_json: bool,
) -> None:
    """Run a workflow (a YAML file or a Python MODULE:ATTR) and print its result."""
    _parse_input(raw_input, pairs)  # a malformed --input or -i fails before anything opens
    with open_engine(store_url, imports) as engine:
        workflow = load_target(target)
        data = _parse_input(raw_input, pairs, _text_inputs(workflow))
        if watch:
            _watch(engine)
        result = engine.run(workflow, data)
    _print_result(result, as_json, _resume_options(target, store_url, imports))


@main.command()
@click.argument("execution_id")
@click.option("--approve/--reject", "approved", default=None, help="The approval decision.")
@click.option("--by", metavar="NAME", help="Who decides (must be a listed approver).")
@click.option("--response", "raw_response", metavar="JSON", help="Data stored as ctx 'response'.")
@workflow_option
@click.option(
    "--allow-changed-definition", is_flag=True, help="Resume although the definition changed."
)
@click.option("--watch", is_flag=True, help="Show each step live.")
@store_option
@import_option
@json_option
@handles_errors
def resume(
    execution_id: str,
    approved: bool | None,
    by: str | None,
    raw_response: str | None,
    workflow_target: str | None,
    allow_changed_definition: bool,
    watch: bool,
    store_url: str | None,
    imports: Sequence[str],
    as_json: bool,
) -> None:
    """Resume a halted execution (answer its approval with --approve or --reject)."""
    response = None
    if raw_response is not None:
        try:
            response = json.loads(raw_response)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--response is not valid JSON: {exc}") from None
    with open_engine(store_url, imports) as engine:
        workflow = load_target(workflow_target) if workflow_target else None
        if watch:
            _watch(engine)
        result = engine.resume(
            execution_id,
            approved=approved,
            by=by,
            response=response,
            workflow=workflow,
            allow_changed_definition=allow_changed_definition,
        )
    _print_result(result, as_json, _resume_options(workflow_target, store_url, imports))


@main.command()
@click.argument("execution_id")
@workflow_option
@click.option(
    "--allow-changed-definition", is_flag=True, help="Retry although the definition changed."
)
@click.option("--watch", is_flag=True, help="Show each step live.")
@store_option
@import_option
@json_option
@handles_errors
def retry(
    execution_id: str,
    workflow_target: str | None,
    allow_changed_definition: bool,
    watch: bool,
    store_url: str | None,
    imports: Sequence[str],
    as_json: bool,
) -> None:
    """Continue a failed execution at the step that failed (steps that completed do not
    run again)."""
    with open_engine(store_url, imports) as engine:
        workflow = load_target(workflow_target) if workflow_target else None
        if watch:
            _watch(engine)
        result = engine.retry(
            execution_id, workflow=workflow, allow_changed_definition=allow_changed_definition
        )
    _print_result(result, as_json, _resume_options(workflow_target, store_url, imports))


@main.command()
@click.argument("execution_id")
@click.option("--reason", metavar="TEXT", help="Why; kept as the execution's error.")
@click.option("--by", metavar="NAME", help="Who cancels (kept in the cancelled entry).")
@workflow_option
@store_option
@import_option
@json_option
@handles_errors
def cancel(
    execution_id: str,
    reason: str | None,
    by: str | None,
    workflow_target: str | None,
    store_url: str | None,
    imports: Sequence[str],
    as_json: bool,
) -> None:
    """Cancel an execution: at once unless it is running, else after its current step."""
    with open_engine(store_url, imports) as engine:
        workflow = load_target(workflow_target) if workflow_target else None
        result = engine.cancel(execution_id, reason=reason, by=by, workflow=workflow)
    if as_json:
        echo_json(
            {
                "execution_id": result.execution_id,
                "workflow_id": result.workflow_id,
                "status": result.status.value,
                "error": result.error,
            }
        )
    elif result.cancelled:
        click.secho(f"cancelled: {result.execution_id}", fg="red", bold=True)
    else:
        click.echo(f"cancelling: {result.execution_id} is running; it stops after its current step")


@main.command()
@click.argument("execution_id")
@click.argument("name")
@click.option("--data", "raw_data", metavar="JSON", help="The payload (JSON); default null.")
@click.option("--key", metavar="K", help="Send once: a second signal with this key is dropped.")
@workflow_option
@store_option
@import_option
@json_option
@handles_errors
def signal(
    execution_id: str,
    name: str,
    raw_data: str | None,
    key: str | None,
    workflow_target: str | None,
    store_url: str | None,
    imports: Sequence[str],
    as_json: bool,
) -> None:
    """Send the signal NAME to an execution; a `wait` step for NAME consumes it.

    When the execution waits for NAME and its workflow is known here (-m, --workflow,
    or configured) it goes on at once; otherwise the next `flowkit wake` or worker
    delivers it.
    """
    try:
        payload = None if raw_data is None else json.loads(raw_data)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from None
    with open_engine(store_url, imports) as engine:
        if workflow_target:
            engine.definition(load_target(workflow_target))
        sent = engine.signal(execution_id, name, payload, key=key)
        execution = engine.load(execution_id)
    if as_json:
        echo_json({"execution_id": execution_id, "sent": sent, "status": execution.status.value})
    elif sent:
        click.echo(f"sent: signal {name!r} to {execution_id} (now {execution.status.value})")
    else:
        click.echo(f"dropped: a signal with key {key!r} was sent to {execution_id} before")


workflows_option = click.option(
    "--workflow",
    "workflow_targets",
    multiple=True,
    metavar="FILE_OR_MODULE:ATTR",
    help="A workflow definition the executions may need, when it is not configured. Repeatable.",
)


def _register(engine: Any, targets: Sequence[str]) -> None:
    for target in targets:
        engine.definition(load_target(target))


@main.command()
@workflows_option
@store_option
@import_option
@json_option
@log_options("info")
@handles_errors
def recover(
    workflow_targets: Sequence[str], store_url: str | None, imports: Sequence[str], as_json: bool
) -> None:
    """Continue executions whose process died (their lease expired)."""
    with open_engine(store_url, imports) as engine:
        _register(engine, workflow_targets)
        results = engine.recover()
    _print_results(results, "recovered", as_json)


@main.command()
@workflows_option
@store_option
@import_option
@json_option
@log_options("info")
@handles_errors
def wake(
    workflow_targets: Sequence[str], store_url: str | None, imports: Sequence[str], as_json: bool
) -> None:
    """Move on executions whose timers fired, and start due schedules."""
    with open_engine(store_url, imports) as engine:
        _register(engine, workflow_targets)
        results = engine.wake_due()
    _print_results(results, "woken", as_json)


def _print_results(results: Sweep, verb: str, as_json: bool) -> None:
    """Print what a sweep did; exit 1 when it found executions it could not move on."""
    if as_json:
        echo_json(
            [
                {"execution_id": r.execution_id, "status": r.status.value, "error": r.error}
                for r in results
            ]
            + [
                {"execution_id": execution_id, "status": "stuck", "error": reason}
                for execution_id, reason in results.stuck.items()
            ]
        )
    else:
        click.echo(f"{len(results)} execution{'s' if len(results) != 1 else ''} {verb}")
        for result in results:
            click.echo(f"  {result.execution_id}  {result.status.value}")
        for execution_id, reason in results.stuck.items():
            click.echo(f"error: execution {execution_id} could not be {verb}: {reason}", err=True)
    if results.stuck:
        raise SystemExit(1)


@main.command()
@click.argument("modules", nargs=-1, metavar="MODULE…")
@click.option("--processes", default=1, show_default=True, help="Worker processes.")
@click.option("--threads", default=8, show_default=True, help="Threads per process.")
@click.option(
    "--queue", metavar="NAME", help="The queue to consume (default: FLOWKIT_QUEUE, else flowkit)."
)
@click.option("--broker", "broker_url", metavar="URL", help="Broker URL (redis:// or amqp://).")
@store_option
@log_format_option
@log_level_option("warning")
@handles_errors
def worker(
    modules: Sequence[str],
    processes: int,
    threads: int,
    queue: str | None,
    broker_url: str | None,
    store_url: str | None,
    log_format: str,
    log_level: str,
) -> None:
    """Run Dramatiq workers that import MODULEs (which register workflows and services).

    The workers also run recover() and wake_due() every few seconds (one
    worker at a time, under a lock in the broker), which starts due schedules,
    and prune finished executions when the 'retention' setting is set.
    """
    if broker_url:
        os.environ["FLOWKIT_BROKER"] = broker_url
    if store_url:
        os.environ["FLOWKIT_STORE"] = store_url
    os.environ["FLOWKIT_EXECUTOR"] = "dramatiq"
    from ..backends.dramatiq import run_workers  # loads dramatiq: only for this command

    sys.exit(
        run_workers(
            [*settings().imports, *modules],
            processes=processes,
            threads=threads,
            queue=queue,
            log_format=log_format,
            log_level=log_level,
        )
    )
