"""expense_approval: a human approval step with named approvers, a deadline and
three outcomes, written in Python.

The twin of ``expense_approval.yml``: both compile to the same definition
(``tests/test_examples_python.py`` checks it).

Shows: a router on an input value (``flowkit.when(...).then(...)``), an
approval step (prompt and context with references, approvers, on_reject,
timeout/on_timeout), ``$response`` after a resume, and several end steps that
each return their own result.

Services: none. The approval is answered from outside, e.g.
    flowkit.resume(execution_id, approved=True, by="alice", response={"comment": "ok"})
Only "alice" or "bob" may decide; nobody answering within three days moves the
execution to ``expired``.
"""

from __future__ import annotations

import flowkit

__all__ = ["workflow"]

DAY = 24 * 60 * 60  # seconds

workflow = flowkit.Workflow(
    "expense_approval",
    name="Expense Approval",
    description="Expenses above the limit need a manager's approval; smaller ones pass at once.",
    timeout=7 * DAY,  # the whole execution may last at most a week
    inputs={
        "amount": flowkit.Input(type=float, description="Amount claimed, in the company currency."),
        "employee": flowkit.Input(type=str, description="Who claims the expense."),
        "note": flowkit.Input(
            type=str, required=False, default="", description="Free text shown to the approver."
        ),
        "limit": flowkit.Input(
            type=float,
            required=False,
            default=100,
            description="Amounts above this need an approval.",
        ),
    },
)

workflow.router(
    "check",
    routes=[flowkit.when("input.amount", "gt", "$input.limit").then("ask")],
    default="auto_approved",
)

# Approved continues with the step declared next; rejected and expired go elsewhere.
workflow.approval(
    "ask",
    prompt="Approve an expense of $input.amount from $input.employee? $input.note",
    context={
        "employee": "$input.employee",
        "amount": "$input.amount",
        "note": "$input.note",
        "limit": "$input.limit",
    },
    approvers=["alice", "bob"],
    timeout=3 * DAY,
    on_timeout="expired",
    on_reject="rejected",
)

workflow.end(
    "approved",
    result={
        "status": "approved",
        "employee": "$input.employee",
        "amount": "$input.amount",
        "comment": "$response.comment",
    },
)

workflow.end(
    "rejected",
    result={
        "status": "rejected",
        "employee": "$input.employee",
        "amount": "$input.amount",
        "comment": "$response.comment",
    },
)

workflow.end(
    "expired",
    result={"status": "expired", "employee": "$input.employee", "amount": "$input.amount"},
)

workflow.end(
    "auto_approved",
    result={"status": "auto_approved", "employee": "$input.employee", "amount": "$input.amount"},
)
