"""Commands that keep a store in shape: ``flowkit schedule add|list|remove`` (SPEC §16)
and ``flowkit prune`` (SPEC §17)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from ..definitions import did_you_mean, seconds
from ..engine import FINISHED, MISSED_COUNT_LIMIT, ScheduleSlots, schedule_slots
from ..errors import ConfigError
from ..records import Schedule, Status
from .app import (
    console,
    echo_json,
    handles_errors,
    import_option,
    json_option,
    load_target,
    main,
    open_engine,
    open_store,
    store_option,
)


@main.group()
def schedule() -> None:
    """Start workflows on a cron schedule.

    Schedules live in the store. Whatever runs ``wake_due()`` starts their
    executions: Dramatiq workers (``flowkit worker``) every few seconds, or
    ``flowkit wake`` run from cron. Each slot starts once, however many of
    them run.
    """


@schedule.command("add")
@click.argument("name")
@click.argument("workflow", metavar="WORKFLOW")
@click.option("--cron", required=True, metavar="EXPR", help="When, e.g. '30 2 * * *'.")
@click.option("--input", "raw_input", metavar="JSON", help="The input of each execution.")
@click.option(
    "--timezone",
    default="UTC",
    show_default=True,
    metavar="TZ",
    help="The time zone the expression is read in, e.g. Europe/Berlin.",
)
@store_option
@import_option
@json_option
@handles_errors
def add(
    name: str,
    workflow: str,
    cron: str,
    raw_input: str | None,
    timezone: str,
    store_url: str | None,
    imports: Sequence[str],
    as_json: bool,
) -> None:
    """Save schedule NAME, which starts WORKFLOW (an id, a FILE or MODULE:ATTR).

    A schedule with that name is replaced (one that is the same is left as it
    is, with its history). The workflow must be known here
    (-m MODULE, a file, or the 'workflows' setting), and to the workers that
    will start it.
    """
    data = _json_object(raw_input, "--input")
    with open_engine(store_url, imports) as engine:
        workflow_id = workflow
        if _names_a_definition(workflow):
            workflow_id = engine.definition(load_target(workflow)).id
        existed = any(known.name == name for known in engine.schedules())
        now = engine.clock.now()
        saved = engine.schedule(name, workflow_id, cron=cron, input=data, timezone=timezone)
        slots = schedule_slots(saved, now)
    if as_json:
        echo_json(_as_json(saved, slots))
        return
    verb = "added"
    if existed:
        verb = "unchanged" if saved.created_at < now else "replaced"
    click.echo(
        f"schedule '{name}' {verb}: starts workflow '{workflow_id}' at '{cron}' "
        f"({timezone}); next {_when(slots.next, saved.timezone)}"
    )


@schedule.command("list")
@store_option
@json_option
@handles_errors
def list_schedules(store_url: str | None, as_json: bool) -> None:
    """List the schedules with their next slot, the last one started and missed ones."""
    store = open_store(store_url)
    try:
        schedules = store.schedules()
    finally:
        store.close()
    now = datetime.now(UTC)
    rows = [(saved, _slots(saved, now)) for saved in schedules]
    if as_json:
        echo_json([_as_json(saved, slots) for saved, slots in rows])
        return
    if not rows:
        click.echo("No schedules.")
        return
    from rich.table import Table

    table = Table(box=None)
    for column in ("name", "workflow", "cron", "time zone", "next", "last slot", "missed"):
        table.add_column(column, no_wrap=True)
    for saved, slots in rows:
        last = "-" if saved.last_slot is None else _when(saved.last_slot, saved.timezone)
        table.add_row(
            saved.name,
            saved.workflow_id,
            saved.cron,
            saved.timezone,
            _when(slots.next, saved.timezone),
            last,
            _missed(slots),
        )
    console().print(table)
    if any(slots.missed > 1 for _, slots in rows):
        click.echo("When slots were missed, the next wake-up starts only the latest one.")


@schedule.command("remove")
@click.argument("name")
@store_option
@handles_errors
def remove(name: str, store_url: str | None) -> None:
    """Delete schedule NAME; the executions it started stay."""
    store = open_store(store_url)
    try:
        removed = store.delete_schedule(name)
    finally:
        store.close()
    if not removed:
        raise ConfigError(
            f"no schedule '{name}' in the store; 'flowkit schedule list' shows the schedules"
        )
    click.echo(f"schedule '{name}' removed; the executions it started stay")


@main.command()
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="DURATION",
    help="Prune executions last updated longer ago than this: 30d, 12h, P30D…",
)
@click.option(
    "--status",
    "status_options",
    multiple=True,
    metavar="S[,S…]",
    help="Only these statuses (default: completed,failed,cancelled).",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@store_option
@json_option
@handles_errors
def prune(
    older_than: str,
    status_options: Sequence[str],
    dry_run: bool,
    store_url: str | None,
    as_json: bool,
) -> None:
    """Delete finished executions, with their entries and signals.

    Only completed, failed and cancelled executions can be pruned: running,
    waiting, halted and pending ones are never touched.
    """
    age = _age(older_than)
    statuses = _finished_statuses(status_options)
    before = datetime.now(UTC) - age
    store = open_store(store_url)
    try:
        count = store.prune(before=before, statuses=statuses, dry_run=dry_run)
    finally:
        store.close()
    names = [status.value for status in statuses]
    if as_json:
        echo_json(
            {"pruned": count, "dry_run": dry_run, "before": before.isoformat(), "statuses": names}
        )
        return
    noun = "execution" if count == 1 else "executions"
    verb = "would prune" if dry_run else "pruned"
    click.echo(
        f"{verb} {count} {noun} ({', '.join(names)}) last updated before "
        f"{before:%Y-%m-%d %H:%M:%S} UTC" + (" (dry run: nothing deleted)" if dry_run else "")
    )


def _json_object(raw: str | None, option: str) -> dict[str, Any]:
    """A JSON object given on the command line (empty when not given).

    Raises:
        ConfigError: it is not valid JSON, or not an object.
    """
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f'{option} must be a JSON object, e.g. \'{{"region": "eu"}}\'')
    return data


def _names_a_definition(workflow: str) -> bool:
    """Whether WORKFLOW is a file or MODULE:ATTR rather than a workflow id."""
    return (
        ":" in workflow or workflow.endswith((".yml", ".yaml", ".json")) or Path(workflow).is_file()
    )


def _age(text: str) -> timedelta:
    """``--older-than`` as a timedelta.

    Raises:
        ConfigError: it is not a duration.
    """
    try:
        age = seconds(float(text) if _is_number(text) else text)
    except ValueError as exc:
        raise ConfigError(f"--older-than: {exc}") from None
    if age < 0:
        raise ConfigError(f"--older-than must not be negative, got {text!r}")
    return timedelta(seconds=age)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _finished_statuses(options: Sequence[str]) -> list[Status]:
    """The statuses ``--status`` names (all finished ones by default).

    Raises:
        ConfigError: an unknown status, or one that is not finished.
    """
    names = [name.strip() for option in options for name in option.split(",") if name.strip()]
    if not names:
        return list(FINISHED)
    allowed = ", ".join(status.value for status in FINISHED)
    statuses: list[Status] = []
    for name in names:
        try:
            status = Status(name)
        except ValueError:
            known = [status.value for status in Status]
            raise ConfigError(
                f"--status: unknown status '{name}'{did_you_mean(name, known)}; name {allowed}"
            ) from None
        if status not in FINISHED:
            raise ConfigError(
                f"--status: {status.value} executions are never pruned (they are still in "
                f"use); name {allowed}"
            )
        if status not in statuses:
            statuses.append(status)
    return statuses


def _slots(saved: Schedule, now: datetime) -> ScheduleSlots:
    """Where a schedule stands.

    Raises:
        ConfigError: its expression or time zone cannot be read here (it was
            written by another flowkit, or by hand).
    """
    try:
        return schedule_slots(saved, now)
    except ValueError as exc:
        raise ConfigError(
            f"schedule '{saved.name}' cannot be read: {exc}; remove it with "
            f"'flowkit schedule remove {saved.name}' and add it again"
        ) from None


def _when(moment: datetime, timezone: str) -> str:
    """A slot on the schedule's wall clock, with its UTC time when that differs."""
    local = moment.astimezone(ZoneInfo(timezone))
    text = f"{local:%Y-%m-%d %H:%M:%S %Z}"
    if local.utcoffset():
        text += f" ({moment.astimezone(UTC):%H:%M:%S} UTC)"
    return text


def _missed(slots: ScheduleSlots) -> str:
    if slots.missed >= MISSED_COUNT_LIMIT:
        return f"{MISSED_COUNT_LIMIT}+"
    return str(slots.missed)


def _as_json(saved: Schedule, slots: ScheduleSlots) -> dict[str, Any]:
    return {
        "name": saved.name,
        "workflow_id": saved.workflow_id,
        "cron": saved.cron,
        "timezone": saved.timezone,
        "input": saved.input,
        "created_at": saved.created_at.isoformat(),
        "last_slot": None if saved.last_slot is None else saved.last_slot.isoformat(),
        "next": slots.next.isoformat(),
        "due": None if slots.due is None else slots.due.isoformat(),
        "missed": slots.missed,
    }
