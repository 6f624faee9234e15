"""Commands that inspect executions: ``flowkit list`` and ``flowkit show``."""

from __future__ import annotations

import json
from collections.abc import Sequence

import click

from ..errors import NotFoundError
from ..records import Entry, Execution, Status, entry_to_dict, execution_to_dict
from .app import (
    console,
    echo_json,
    handles_errors,
    import_modules,
    import_option,
    json_option,
    main,
    open_store,
    status_text,
    store_option,
)


@main.command(name="list")
@click.option("--status", type=click.Choice([status.value for status in Status]))
@click.option("--workflow", "workflow_id", metavar="ID", help="Only this workflow's executions.")
@click.option(
    "--limit", type=click.IntRange(min=0), default=50, show_default=True, help="How many to show."
)
@store_option
@import_option
@json_option
@handles_errors
def list_(
    status: str | None,
    workflow_id: str | None,
    limit: int,
    store_url: str | None,
    imports: Sequence[str],
    as_json: bool,
) -> None:
    """List executions, most recently updated first."""
    import_modules(imports)  # as every command does: a module may configure the store
    store = open_store(store_url)
    try:
        executions = store.find(workflow_id=workflow_id, status=status, limit=limit)
    finally:
        store.close()
    if as_json:
        echo_json([execution_to_dict(execution) for execution in executions])
        return
    from rich.table import Table

    table = Table(box=None)
    # Never shorten an id: it is what `flowkit show` and `flowkit resume` take.
    width = max((len(execution.id) for execution in executions), default=2)
    table.add_column("id", no_wrap=True, min_width=width)
    for name in ("workflow", "status", "step", "updated"):
        table.add_column(name)
    for execution in executions:
        table.add_row(
            execution.id,
            execution.workflow_id,
            status_text(execution.status),
            execution.current_step or "",
            execution.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console().print(table)


@main.command()
@click.argument("execution_id")
@store_option
@import_option
@json_option
@handles_errors
def show(execution_id: str, store_url: str | None, imports: Sequence[str], as_json: bool) -> None:
    """Show an execution: its record, cursor and entries."""
    import_modules(imports)  # as every command does: a module may configure the store
    store = open_store(store_url)
    try:
        execution = store.load(execution_id)
        if execution is None:
            raise NotFoundError(f"no execution '{execution_id}' in the store")
        entries = store.entries(execution_id)
    finally:
        store.close()
    if as_json:
        echo_json(
            {
                "execution": execution_to_dict(execution),
                "entries": [entry_to_dict(entry) for entry in entries],
            }
        )
        return
    _show_rich(execution, entries)


def _show_rich(execution: Execution, entries: Sequence[Entry]) -> None:
    from rich.table import Table

    out = console()
    record = Table(box=None, show_header=False)
    record.add_column(no_wrap=True)
    record.add_column(overflow="fold")  # long values wrap at the width, never cut
    for key, value in (
        ("execution", execution.id),
        ("workflow", f"{execution.workflow_id} (version {execution.workflow_version})"),
        ("status", status_text(execution.status)),
        ("step", execution.current_step or ""),
        ("parent", execution.parent_id or ""),
        ("created", execution.created_at.isoformat()),
        ("updated", execution.updated_at.isoformat()),
        ("error", execution.error or ""),
        ("halt", json.dumps(execution.halt_data) if execution.halt_data else ""),
        ("cursor", json.dumps(execution.cursor) if execution.cursor else ""),
        ("result", json.dumps(execution.result) if execution.result is not None else ""),
    ):
        if value:
            record.add_row(f"[bold]{key}[/]", str(value))
    out.print(record)
    table = Table("seq", "step", "type", "action", "try", "ms", "output / error")
    for entry in entries:
        detail = entry.error or json.dumps(entry.output, ensure_ascii=False)
        table.add_row(
            str(entry.seq),
            entry.step_id + (f" #{entry.iteration}" if entry.iteration is not None else ""),
            entry.step_type,
            status_text(Status.FAILED) if entry.action.value == "failed" else entry.action.value,
            str(entry.attempt),
            f"{entry.duration_ms:.1f}",
            detail if len(detail) <= 80 else detail[:77] + "...",
        )
    out.print(table)
