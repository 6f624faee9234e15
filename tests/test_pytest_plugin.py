"""The pytest plugin, exercised the way users use it (through pytester)."""

from __future__ import annotations

import subprocess
import sys

import pytest

USER_TESTS = """
import flowkit

wf = flowkit.Workflow("expenses", inputs={"amount": float})

@wf.step(output="quote")
def price(amount: float) -> dict:
    return {"total": amount * 1.2}

wf.router("check", routes=[flowkit.when("quote.total", "gt", 100).then("ask")], default="done")
wf.approval("ask", prompt="Approve $quote.total?", approvers=["ops"], timeout=3600,
            on_timeout="expired", next="notify")
wf.call("notify", service="Mail", method="send", input={"total": "$quote.total"}, output="mail")
wf.end("done", result={"total": "$quote.total"})
wf.assign("expired", set={"expired": True}, next="done")


def test_one_step_with_a_stub(run_step, stub_service):
    mail = stub_service("Mail", {"send": {"id": "m1"}})
    result = run_step(wf, "notify", ctx={"quote": {"total": 120.0}})
    assert result.output == {"id": "m1"}
    assert result.ctx["mail"] == {"id": "m1"}
    assert result.next == "done"
    assert mail.calls_to("send")[0].kwargs == {"total": 120.0}


def test_router_step(run_step):
    assert run_step(wf, "check", ctx={"quote": {"total": 50}}).next == "done"
    assert run_step(wf, "check", ctx={"quote": {"total": 500}}).next == "ask"


def test_approval_timeout_takes_no_time(flowkit_engine, flowkit_clock):
    result = flowkit_engine.run(wf, {"amount": 200})
    assert result.halted
    flowkit_clock.advance(3601)
    [woken] = flowkit_engine.wake_due()
    assert woken.completed
    assert woken.output == {"total": 240.0}


def test_whole_workflow(flowkit_engine, stub_service):
    mail = stub_service("Mail", {"send": {"id": "m2"}})
    halted = flowkit_engine.run(wf, {"amount": 500})
    done = flowkit_engine.resume(halted.execution_id, approved=True, by="ops")
    assert done.completed
    assert len(mail.calls) == 1


def test_plain_function_still_works():
    assert price(10.0) == {"total": 12.0}
"""


def test_user_tests_pass_with_the_plugin_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=5)


def test_retries_use_the_fake_clock(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_retry="""
import flowkit

attempts = []

wf = flowkit.Workflow("flaky")

@wf.step(output="value", retries=2, retry_delay=30, retry_backoff=2)
def fetch() -> int:
    attempts.append(1)
    if len(attempts) < 3:
        raise ConnectionError("try again")
    return 7

def test_retries(flowkit_engine, flowkit_clock):
    result = flowkit_engine.run(wf)
    assert result.completed
    assert flowkit_clock.sleeps == [30, 60]
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)


def test_stub_is_restored_after_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_restore="""
import flowkit

@flowkit.service("Greeter")
def hello(name: str) -> str:
    return f"hi {name}"

def test_stubbed(stub_service):
    stub_service("Greeter", {"hello": "stubbed"})
    from flowkit.services import default_registry
    assert default_registry.resolve("Greeter", "hello")("x") == "stubbed"

def test_restored():
    from flowkit.services import default_registry
    assert default_registry.resolve("Greeter", "hello")("x") == "hi x"
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)


def test_a_failing_user_assertion_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_fail="""
def test_wrong(run_step):
    import flowkit
    wf = flowkit.Workflow("w")
    wf.assign("a", set={"x": 1})
    assert run_step(wf, "a").ctx == {"x": 2}
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(failed=1)


def test_the_store_option_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--flowkit-store=URL*"])


def test_the_conformance_suite_names_the_extra_it_needs() -> None:
    hidden = "import sys; sys.modules['hypothesis'] = None; import flowkit.testing.conformance"
    ran = subprocess.run(
        [sys.executable, "-c", hidden], capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 1
    assert ran.stderr.splitlines()[-1] == (
        "flowkit.errors.ConfigError: flowkit.testing.conformance needs the 'hypothesis' "
        "package: pip install 'flowkit-workflows[testing]' (or pip install -e '.[testing]' "
        "from the source tree)"
    )
