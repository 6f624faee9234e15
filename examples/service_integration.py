"""service_integration: calling an external API defensively, written in Python.

The twin of ``service_integration.yml``: both compile to the same definition
(``tests/test_examples_python.py`` checks it).

Shows: a call with ``timeout``, ``retries``, ``retry_delay`` and
``retry_backoff`` (up to 4 attempts, waiting 0.5 s, 1 s, 2 s between them);
``on_error`` to a fallback call that serves a cached answer; ``$_last_error``
on the error path; a router on the call's result (numeric comparison against
an input, ``in`` a list); a non-fatal notification whose failure is ignored
through ``on_error``. Steps whose ``next`` is not the step declared after them
say so with ``next=``.

Services (``examples.services.weather``):
    WeatherApi.get_forecast(city: str, days: int) -> dict
      returns {"city", "max_temp", "min_temp", "conditions"}; may fail or time out
    ForecastCache.get(city: str) -> dict   # raises KeyError when nothing is cached
    Notifications.send(channel: str, message: str) -> dict   # {"id": str}
"""

from __future__ import annotations

import flowkit

__all__ = ["workflow"]

workflow = flowkit.Workflow(
    "service_integration",
    name="Service Integration",
    description=(
        "Fetches a forecast from an external API, falls back to a cache, and raises alerts."
    ),
    inputs={
        "city": flowkit.Input(type=str, description="City to look up."),
        "heat_threshold": flowkit.Input(
            type=float,
            required=False,
            default=30,
            description="Maximum temperature (°C) from which a heat warning is sent.",
        ),
        "alert_channel": flowkit.Input(type=str, required=False, default="#weather-alerts"),
    },
)

workflow.call(
    "fetch_forecast",
    service="WeatherApi",
    method="get_forecast",
    input={"city": "$input.city", "days": 1},
    output="forecast",
    timeout=5,
    retries=3,
    retry_delay=0.5,
    retry_backoff=2,
    on_error="use_cache",
)

workflow.assign("mark_live", set={"source": "live"}, next="classify")

workflow.call(
    "use_cache",
    service="ForecastCache",
    method="get",
    input={"city": "$input.city"},
    output="forecast",
    on_error="unavailable",
)

workflow.assign("mark_cached", set={"source": "cache", "api_error": "$_last_error.message"})

workflow.router(
    "classify",
    routes=[
        flowkit.when("forecast.conditions", "in", ["storm", "hurricane", "blizzard"]).then(
            "storm_warning"
        ),
        flowkit.when("forecast.max_temp", "gte", "$input.heat_threshold").then("heat_warning"),
    ],
    default="no_alert",
)

workflow.assign(
    "storm_warning",
    set={"alert": "Storm warning for $input.city: $forecast.conditions expected"},
    next="notify",
)

workflow.assign(
    "heat_warning",
    set={"alert": "Heat warning for $input.city: up to $forecast.max_temp °C"},
    next="notify",
)

workflow.assign("no_alert", set={"alert": None}, next="report")

workflow.call(
    "notify",
    service="Notifications",
    method="send",
    input={"channel": "$input.alert_channel", "message": "$alert"},
    output="notification",
    retries=2,
    on_error="report",  # an alert that cannot be sent must not fail the run
)

workflow.end(
    "report",
    result={
        "city": "$input.city",
        "source": "$source",
        "forecast": "$forecast",
        "alert": "$alert",
    },
)

workflow.end(
    "unavailable",
    result={
        "city": "$input.city",
        "source": None,
        "error": "no forecast available: $_last_error.message",
    },
)
