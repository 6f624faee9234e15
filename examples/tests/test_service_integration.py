"""Testing service_integration: retries and their backoff without waiting, the fallback.

Retry delays sleep on ``flowkit_clock``, which records them in
``flowkit_clock.sleeps`` instead of waiting.
"""

from __future__ import annotations

import pytest

from examples.service_integration import workflow

LISBON = {"city": "Lisbon", "max_temp": 24.0, "min_temp": 16.0, "conditions": "sunny"}


def flaky(failures, answer):
    """A stand-in for ``WeatherApi.get_forecast`` that fails ``failures`` times first."""
    calls = []

    def get_forecast(city, days):
        calls.append(city)
        if len(calls) <= failures:
            raise ConnectionError("connection reset by peer")
        return answer

    return get_forecast


def test_fetch_retries_with_backoff_then_succeeds(run_step, stub_service, flowkit_clock):
    api = stub_service("WeatherApi", {"get_forecast": flaky(2, LISBON)})
    result = run_step(workflow, "fetch_forecast", input={"city": "Lisbon"})
    assert result.ctx["forecast"] == LISBON
    assert result.next == "mark_live"
    assert len(api.calls) == 3
    assert api.calls[0].kwargs == {"city": "Lisbon", "days": 1}
    assert flowkit_clock.sleeps == [0.5, 1.0]  # retry_delay 0.5, retry_backoff 2


def test_fetch_gives_up_after_three_retries(run_step, stub_service, flowkit_clock):
    stub_service("WeatherApi", {"get_forecast": ConnectionError("down")})
    result = run_step(workflow, "fetch_forecast", input={"city": "Lisbon"})
    assert result.next == "use_cache"
    assert result.ctx["_last_error"]["message"] == "down"
    assert flowkit_clock.sleeps == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    ("forecast", "goes_to"),
    [
        ({"conditions": "storm", "max_temp": 20}, "storm_warning"),
        ({"conditions": "sunny", "max_temp": 35}, "heat_warning"),
        ({"conditions": "sunny", "max_temp": 25}, "no_alert"),
    ],
)
def test_classify(run_step, forecast, goes_to):
    result = run_step(
        workflow, "classify", ctx={"forecast": forecast}, input={"heat_threshold": 30}
    )
    assert result.next == goes_to


def test_the_cache_answers_when_the_api_is_down(flowkit_engine, stub_service):
    stub_service("WeatherApi", {"get_forecast": ConnectionError("down")})
    cache = stub_service("ForecastCache", {"get": LISBON})
    result = flowkit_engine.run(workflow, {"city": "Lisbon"})
    assert result.output == {"city": "Lisbon", "source": "cache", "forecast": LISBON, "alert": None}
    assert cache.calls_to("get")[0].kwargs == {"city": "Lisbon"}


def test_a_heat_warning_is_sent(flowkit_engine, stub_service):
    notifications = stub_service("Notifications", {"send": {"id": "m-1"}})
    result = flowkit_engine.run(workflow, {"city": "Seville"})  # the real (simulated) API
    assert result.output["alert"] == "Heat warning for Seville: up to 39.5 °C"
    [call] = notifications.calls
    assert call.kwargs == {"channel": "#weather-alerts", "message": result.output["alert"]}


def test_a_failed_notification_does_not_fail_the_run(flowkit_engine, stub_service):
    notifications = stub_service("Notifications", {"send": ConnectionError("chat is down")})
    result = flowkit_engine.run(workflow, {"city": "Seville"})
    assert result.completed
    assert len(notifications.calls) == 3  # the first attempt and two retries
