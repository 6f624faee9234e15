"""The ``guardrail`` step: checks on text before it reaches a model (or a user).

Checks run in order and stop at the first failure:

- ``prompt_injection``: phrases that try to override the instructions
  (``ignore all previous instructions``, ``you are now DAN``, fake ``system:``
  turns, requests to reveal the system prompt…);
- ``pii``: email addresses, phone numbers, payment card numbers (13 to 19 digits
  that pass the Luhn check) and national ids (US SSN, UK National Insurance
  number); ``detect`` narrows the kinds;
- ``regex``: ``pattern`` found (``block_on_match: true``, the default) or not
  found (``block_on_match: false``); patterns use RE2 syntax and run in linear time;
- ``length``: at least ``min`` and at most ``max`` characters;
- ``moderation``: the provider's moderation endpoint flags it; when it
  cannot be reached the check fails (closed) unless ``fail_open: true``.

A failure goes to ``on_fail`` with ``_guardrail_failure = {check, reason}``
in ctx, or fails the step with an error naming the check. Reasons never
repeat the personal data found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from flowkit.abc import Outcome, Runtime, StepType
from flowkit.errors import ExecutionError, FlowkitError
from flowkit.expressions import search_pattern

from ._definitions import GuardrailCheck, GuardrailConfig
from ._dsl import build_guardrail
from ._providers import provider_for

__all__ = ["GuardrailStep", "find_pii", "luhn_valid", "run_check"]

# --- prompt injection ---------------------------------------------------------------------------

_INJECTION_PATTERNS = [
    (
        r"\b(?:ignore|disregard|forget|override|skip)\b[^.\n]{0,40}?"
        r"\b(?:previous|prior|above|earlier|preceding|all|any|your|the|system)\b[^.\n]{0,20}?"
        r"\b(?:instructions?|prompts?|rules|directions|guidelines|context|messages?)\b",
        "asks to ignore the instructions",
    ),
    (r"\byou\s+are\s+(?:now|no\s+longer)\b", "tries to redefine the assistant's role"),
    (
        r"\b(?:act|behave|respond)\s+as\s+(?:if\s+you\s+(?:are|were)\s+)?(?:an?\s+)?"
        r"(?:unrestricted|unfiltered|jailbroken|uncensored|evil)\b",
        "asks for an unrestricted persona",
    ),
    (
        r"\b(?:(?-i:DAN)|do\s+anything\s+now|developer\s+mode|jailbreak|jailbroken)\b",
        "names a known jailbreak",
    ),
    (
        r"\b(?:reveal|show|print|repeat|output|tell\s+me)\b[^.\n]{0,30}?"
        r"\b(?:system\s+prompt|your\s+(?:instructions|prompt|rules)|hidden\s+(?:prompt|instructions))",
        "asks for the system prompt",
    ),
    (r"\bnew\s+(?:instructions|rules|system\s+prompt)\s*:", "injects new instructions"),
    (r"(?:^|\n)\s*(?:#+\s*)?(?:system|assistant)\s*:", "fakes a system or assistant turn"),
    (
        r"<\|(?:im_start|im_end|system|endoftext)\|>|\[/?INST\]|<<SYS>>",
        "contains chat-template tokens",
    ),
    (r"\bpretend\s+(?:to\s+be|you\s+are)\b", "asks the model to pretend"),
]
_INJECTION = [(re.compile(pattern, re.IGNORECASE), why) for pattern, why in _INJECTION_PATTERNS]


def _prompt_injection(text: str) -> str | None:
    for pattern, why in _INJECTION:
        if pattern.search(text):
            return f"possible prompt injection: the text {why}"
    return None


# --- personal data ------------------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_NINO = re.compile(
    r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}"  # +44 20 7946 0958
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}"  # (555) 123-4567
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 555-123-4567
    r"|0\d{2,4}[ -]\d{3,4}[ -]?\d{3,4}"  # 020 7946 0958
    r")(?![\w-])"
)
PII_LABELS = {
    "email": "email address",
    "card": "payment card number",
    "national_id": "national id number",
    "phone": "phone number",
}


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn checksum (as card numbers do)."""
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def find_pii(text: str, kinds: tuple[str, ...] = ()) -> dict[str, int]:
    """How many of each kind of personal data ``text`` holds (kinds found only).

    Args:
        text: the text to scan.
        kinds: ``email``, ``phone``, ``card``, ``national_id``; default all.
    """
    wanted = set(kinds or PII_LABELS)
    found: dict[str, int] = {}
    rest = text

    def take(kind: str, pattern: re.Pattern[str], keep: Callable[[str], bool]) -> None:
        nonlocal rest
        count = 0

        def blank(match: re.Match[str]) -> str:
            nonlocal count
            if not keep(match.group(0)):
                return match.group(0)
            count += 1
            return " " * len(match.group(0))

        rest = pattern.sub(blank, rest)
        if count and kind in wanted:
            found[kind] = found.get(kind, 0) + count

    # Emails and cards go first so their digits are not taken for phone numbers.
    take("email", _EMAIL, lambda _m: True)
    take("card", _CARD, lambda m: luhn_valid(re.sub(r"[ -]", "", m)))
    take("national_id", _SSN, lambda _m: True)
    take("national_id", _NINO, lambda _m: True)
    take("phone", _PHONE, lambda m: 7 <= len(re.sub(r"\D", "", m)) <= 15)
    return found


def _pii(text: str, check: GuardrailCheck) -> str | None:
    found = find_pii(text, check.detect)
    if not found:
        return None
    parts = [f"{PII_LABELS[kind]} ({count})" for kind, count in found.items()]
    return f"contains personal data: {', '.join(parts)}"


# --- the rest -----------------------------------------------------------------------------------


def _regex(text: str, check: GuardrailCheck) -> str | None:
    assert check.pattern is not None
    matched = search_pattern(check.pattern, text)
    if check.block_on_match and matched:
        return f"matches the blocked pattern /{check.pattern}/"
    if not check.block_on_match and not matched:
        return f"does not match the required pattern /{check.pattern}/"
    return None


def _length(text: str, check: GuardrailCheck) -> str | None:
    size = len(text)
    if check.min is not None and size < check.min:
        return f"is {size} characters long; at least {check.min} are required"
    if check.max is not None and size > check.max:
        return f"is {size} characters long; at most {check.max} are allowed"
    return None


def _moderation(text: str, check: GuardrailCheck, run: Runtime | None) -> str | None:
    try:
        provider = provider_for(run.resources if run is not None else None)
        result = provider.moderate(text)
    except (FlowkitError, OSError, NotImplementedError, AttributeError) as exc:
        if check.fail_open:
            return None
        return f"moderation is unavailable ({exc}); failing closed (set fail_open: true to pass)"
    if result.flagged:
        what = f": {', '.join(result.categories)}" if result.categories else ""
        return f"flagged by moderation{what}"
    return None


def run_check(text: str, check: GuardrailCheck, run: Runtime | None = None) -> str | None:
    """Run one check on ``text``; the reason it failed, or None when it passed."""
    if check.type == "prompt_injection":
        return _prompt_injection(text)
    if check.type == "pii":
        return _pii(text, check)
    if check.type == "regex":
        return _regex(text, check)
    if check.type == "length":
        return _length(text, check)
    if check.type == "moderation":
        return _moderation(text, check, run)
    raise ExecutionError(f"unknown guardrail check '{check.type}'")  # pragma: no cover


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


class GuardrailStep(StepType):
    """The ``guardrail`` step type."""

    name = "guardrail"
    config = GuardrailConfig
    edge_sets = MappingProxyType({"on_fail": ("_guardrail_failure",)})
    build = staticmethod(build_guardrail)

    def run(self, run: Runtime) -> Outcome:
        config: GuardrailConfig = run.step.config
        text = _text(run.resolve(config.content))
        results: list[dict[str, Any]] = []
        for check in config.checks:
            reason = run_check(text, check, run)
            if reason is None:
                results.append({"check": check.type, "passed": True})
                continue
            results.append({"check": check.type, "passed": False, "reason": reason})
            failure = {"check": check.type, "reason": reason}
            record = {"passed": False, "checks": results, **failure}
            if config.on_fail is None:
                raise ExecutionError(
                    f"guardrail '{run.path}': check '{check.type}' failed: {reason}"
                )
            updates: dict[str, Any] = {"_guardrail_failure": failure}
            if config.output is not None:
                updates[config.output] = record
            return Outcome(target=config.on_fail, updates=updates, output=record)
        record = {"passed": True, "checks": results}
        updates = {config.output: record} if config.output is not None else {}
        return Outcome(target=run.step.next, updates=updates, output=record)
