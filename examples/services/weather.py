"""The ``WeatherApi``, ``ForecastCache`` and ``Notifications`` services.

Used by: examples/service_integration.yml.

``WeatherApi`` stands for a flaky remote API. It is in-memory and deterministic,
but can be told to misbehave so that the workflow's retries, timeout and
fallback can be seen at work. The controls are module functions, not service
methods, so a workflow cannot call them::

    from examples.services import weather
    weather.fail_next(2)        # the next two calls raise WeatherApiError
    weather.set_latency(6.0)    # every call takes 6 s (the step's timeout is 5 s)
    weather.reset()             # back to normal, empty cache, nothing sent
"""

from __future__ import annotations

import threading
import time
from typing import Any, Final

import flowkit

from ._support import idempotency_key, stable_id

__all__ = [
    "FORECASTS",
    "SERVICES",
    "ForecastCache",
    "NotCachedError",
    "NotificationError",
    "Notifications",
    "WeatherApi",
    "WeatherApiError",
    "api_calls",
    "fail_next",
    "fail_notifications",
    "reset",
    "seed_cache",
    "sent",
    "set_latency",
]

# Daily forecasts for the next three days: (max °C, min °C, conditions).
FORECASTS: Final[dict[str, list[tuple[float, float, str]]]] = {
    "Lisbon": [(24.0, 16.0, "sunny"), (23.5, 15.0, "cloudy"), (21.0, 14.5, "rain")],
    "Seville": [(39.5, 24.0, "sunny"), (41.0, 25.5, "sunny"), (38.0, 23.0, "sunny")],
    "Miami": [(31.0, 26.0, "hurricane"), (29.0, 25.0, "storm"), (30.0, 25.0, "rain")],
    "Oslo": [(-2.0, -9.0, "snow"), (-4.0, -12.0, "blizzard"), (-1.0, -6.0, "cloudy")],
}

# From mild to severe: a forecast over several days reports the worst conditions.
_SEVERITY: Final = ("sunny", "cloudy", "rain", "snow", "storm", "blizzard", "hurricane")


class WeatherApiError(ConnectionError):
    """The (simulated) remote API could not be reached."""


class NotCachedError(KeyError):
    """No forecast was ever fetched for the city."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class NotificationError(ConnectionError):
    """The (simulated) chat service refused the message."""


_lock = threading.Lock()
_failures_left = 0
_failure_message = "connection reset by peer"
_latency = 0.0
_notification_failures_left = 0
_calls: list[str] = []
_cache: dict[str, dict[str, Any]] = {}
_sent: dict[str, dict[str, Any]] = {}


def reset() -> None:
    """Forget every failure, latency, cached forecast, call and sent message."""
    global _failures_left, _failure_message, _latency, _notification_failures_left
    with _lock:
        _failures_left = 0
        _failure_message = "connection reset by peer"
        _latency = 0.0
        _notification_failures_left = 0
        _calls.clear()
        _cache.clear()
        _sent.clear()


def fail_next(times: int, message: str = "connection reset by peer") -> None:
    """Make the next ``times`` calls of ``WeatherApi.get_forecast`` raise ``WeatherApiError``."""
    global _failures_left, _failure_message
    with _lock:
        _failures_left = times
        _failure_message = message


def set_latency(seconds: float) -> None:
    """Make every ``WeatherApi.get_forecast`` call take ``seconds`` (0 to answer at once)."""
    global _latency
    with _lock:
        _latency = seconds


def fail_notifications(times: int) -> None:
    """Make the next ``times`` calls of ``Notifications.send`` raise ``NotificationError``."""
    global _notification_failures_left
    with _lock:
        _notification_failures_left = times


def seed_cache(city: str, forecast: dict[str, Any]) -> None:
    """Put ``forecast`` in the cache for ``city``, as if it had been fetched earlier."""
    with _lock:
        _cache[city] = dict(forecast)


def api_calls() -> list[str]:
    """The city of every ``WeatherApi.get_forecast`` attempt so far, failed ones included."""
    with _lock:
        return list(_calls)


def sent() -> list[dict[str, Any]]:
    """The notifications sent so far, each once however often it was retried."""
    with _lock:
        return [dict(message) for message in _sent.values()]


@flowkit.service("WeatherApi")
class WeatherApi:
    """A remote forecast API (simulated: see the module's controls)."""

    def get_forecast(self, city: str, days: int) -> dict[str, Any]:
        """The forecast for the next ``days`` days in ``city``.

        Returns:
            ``{"city", "days", "max_temp", "min_temp", "conditions"}``: the
            extremes and the most severe conditions over those days. The
            answer is also stored in the :class:`ForecastCache`.

        Raises:
            WeatherApiError: the API is failing (see :func:`fail_next`).
            LookupError: the API knows no such city.
            ValueError: ``days`` is not between 1 and 3.
        """
        global _failures_left
        failure = None
        with _lock:
            _calls.append(city)
            latency = _latency
            if _failures_left > 0:
                _failures_left -= 1
                failure = _failure_message
        if latency:
            time.sleep(latency)
        if failure is not None:
            raise WeatherApiError(f"weather API unreachable: {failure}")
        if not 1 <= days <= 3:
            raise ValueError(f"days must be between 1 and 3, got {days}")
        if city not in FORECASTS:
            raise LookupError(f"the weather API knows no city '{city}'")
        daily = FORECASTS[city][:days]
        forecast = {
            "city": city,
            "days": days,
            "max_temp": max(day[0] for day in daily),
            "min_temp": min(day[1] for day in daily),
            "conditions": max((day[2] for day in daily), key=_SEVERITY.index),
        }
        seed_cache(city, forecast)
        return forecast


@flowkit.service("ForecastCache")
class ForecastCache:
    """The last forecast the API returned for each city."""

    def get(self, city: str) -> dict[str, Any]:
        """The last forecast seen for ``city`` (same shape as ``WeatherApi.get_forecast``).

        Raises:
            NotCachedError: (a ``KeyError``) no forecast was ever fetched for ``city``.
        """
        with _lock:
            forecast = _cache.get(city)
        if forecast is None:
            raise NotCachedError(f"no cached forecast for '{city}'")
        return dict(forecast)


@flowkit.service("Notifications")
class Notifications:
    """A chat service (simulated) that posts alerts to channels."""

    def send(self, channel: str, message: str) -> dict[str, Any]:
        """Post ``message`` to ``channel``, once per step visit however often it is retried.

        Returns:
            ``{"id": str, "channel": str}``.

        Raises:
            NotificationError: the service is failing (see :func:`fail_notifications`).
            ValueError: ``channel`` does not start with ``#`` or ``message`` is empty.
        """
        global _notification_failures_left
        if not channel.startswith("#"):
            raise ValueError(f"channel must start with '#', got {channel!r}")
        if not message:
            raise ValueError("message must not be empty")
        key = idempotency_key()
        with _lock:
            if _notification_failures_left > 0:
                _notification_failures_left -= 1
                raise NotificationError(f"cannot post to {channel}: service unavailable")
            posted = _sent.setdefault(
                key, {"id": stable_id("msg", key), "channel": channel, "message": message}
            )
        return {"id": posted["id"], "channel": posted["channel"]}


SERVICES: Final[dict[str, object]] = {
    "WeatherApi": WeatherApi,
    "ForecastCache": ForecastCache,
    "Notifications": Notifications,
}
"""The services this module registers, by name (see :func:`examples.services.register`)."""
