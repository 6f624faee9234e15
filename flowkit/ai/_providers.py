"""Model providers: one small protocol, an OpenAI-compatible HTTP client, a scripted fake.

A provider takes chat messages (OpenAI's format: ``{"role", "content",
"tool_calls", "tool_call_id"}``) and tool schemas (``{"type": "function",
"function": {...}}``) and returns a :class:`ModelReply`: the text, the tool
calls and the token usage. ``agent`` and ``handoff`` steps talk to the model
only through this protocol; ``guardrail`` moderation checks use
:meth:`Provider.moderate`.

Which provider a step uses (first match wins):

1. the one given to :func:`use_provider` or :func:`set_provider` for that engine
   (``engine=...``), which keeps it in ``engine.resources``;
2. the process-wide one set by :func:`configure` (``provider=...``) or
   :func:`use_provider` without an engine;
3. an :class:`OpenAIProvider` built from :func:`configure`'s settings and the
   environment (``FLOWKIT_AI_BASE_URL``, ``OPENAI_API_KEY``, ``FLOWKIT_AI_MODEL``).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from flowkit.errors import ConfigError, ExecutionError
from flowkit.redaction import add_secret

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_BASE_URL",
    "ModelReply",
    "Moderation",
    "OpenAIProvider",
    "Provider",
    "ProviderError",
    "ScriptedCall",
    "ScriptedProvider",
    "ToolCall",
    "Usage",
    "configure",
    "provider_for",
    "read_log",
    "reply",
    "set_provider",
    "tool_call",
    "use_provider",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class ProviderError(ExecutionError):
    """The model could not be reached or answered with something unusable.

    Attributes:
        status: the HTTP status, when there was a response.
        retryable: whether trying again later may succeed.
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


# --- what goes in and out ---------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Usage:
    """Token counts of one or more model calls."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )

    def to_json(self) -> dict[str, int]:
        """``{"prompt_tokens", "completion_tokens", "total_tokens"}``."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Usage:
        """The inverse of :meth:`to_json`; missing counts are 0."""
        data = data or {}
        return cls(
            prompt_tokens=_count(data.get("prompt_tokens")),
            completion_tokens=_count(data.get("completion_tokens")),
        )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@attrs.frozen(kw_only=True)
class ToolCall:
    """A tool call the model asked for.

    Attributes:
        id: the call's id, echoed in the tool result message.
        name: the tool's name.
        arguments: the arguments as the model sent them (JSON text).
    """

    id: str
    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a mapping.

        Raises:
            ValueError: they are not a JSON object.
        """
        try:
            value = json.loads(self.arguments or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"the arguments are not valid JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            raise ValueError(f"the arguments must be a JSON object, got {self.arguments!r:.80}")
        return value

    def to_message(self) -> dict[str, Any]:
        """The call as it appears in an assistant message."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@attrs.frozen(kw_only=True)
class ModelReply:
    """What the model answered.

    Attributes:
        content: the reply text (None when it only called tools).
        tool_calls: the tools it asked to run, in order.
        usage: the tokens this call used.
        model: the model that answered, when the server says.
        finish_reason: why it stopped (``stop``, ``tool_calls``, ``length``…).
    """

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = Usage()
    model: str | None = None
    finish_reason: str | None = None

    def to_message(self) -> dict[str, Any]:
        """The reply as an assistant message for the next request."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.to_message() for call in self.tool_calls]
        return message


@attrs.frozen(kw_only=True)
class Moderation:
    """The result of a moderation check: whether the text was flagged, and for what."""

    flagged: bool
    categories: tuple[str, ...] = ()


@runtime_checkable
class Provider(Protocol):
    """What ``agent``, ``handoff`` and ``guardrail`` steps need from a model."""

    def complete(
        self,
        *,
        model: str | None,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] = (),
        response_format: Mapping[str, Any] | None = None,
    ) -> ModelReply:
        """One chat completion.

        Raises:
            ProviderError: the model could not be reached or its answer is unusable.
        """
        ...

    def moderate(self, text: str) -> Moderation:
        """Classify ``text`` with the provider's moderation model.

        Raises:
            ProviderError: moderation is unavailable.
        """
        ...


# --- the OpenAI-compatible HTTP provider --------------------------------------------------------


class OpenAIProvider:
    """Chat completions over HTTP, for OpenAI and any compatible server.

    Args:
        base_url: the API root (``…/v1``); default ``FLOWKIT_AI_BASE_URL``,
            else ``OPENAI_BASE_URL``, else OpenAI's.
        api_key: sent as a bearer token; default ``OPENAI_API_KEY`` (a local
            server may need none).
        model: the model used when an agent names none; default ``FLOWKIT_AI_MODEL``.
        timeout: seconds for one HTTP request (connect, read and write).
        max_retries: how often a request answered with 408/409/429/5xx, or
            one that failed to connect or timed out, is tried again.
        backoff: the first wait between attempts (doubled each time, capped
            at ``max_backoff``); a ``Retry-After`` header is honoured instead.
        max_backoff: the longest wait between two attempts, in seconds.
        moderation_model: the model sent to ``/moderations``.
        client: an ``httpx.Client`` to use (not closed by :meth:`close`).
        sleep: how to wait between attempts (tests pass a recorder).
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        moderation_model: str | None = None,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        try:
            import httpx
        except ImportError:  # pragma: no cover - the extra is installed in tests
            raise ConfigError(
                "the OpenAI provider needs httpx: pip install 'flowkit-workflows[ai]'"
            ) from None
        env = os.environ
        self.base_url = (
            base_url
            or env.get("FLOWKIT_AI_BASE_URL")
            or env.get("OPENAI_BASE_URL")
            or DEFAULT_BASE_URL
        ).rstrip("/")
        self.api_key = api_key if api_key is not None else env.get("OPENAI_API_KEY")
        if self.api_key:
            add_secret(self.api_key)  # an error that echoes it is stored without it
        self.model = model or env.get("FLOWKIT_AI_MODEL")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.moderation_model = moderation_model
        self._sleep = sleep
        self._owns_client = client is None
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout), headers=headers)
        self._client_headers = headers if client is not None else {}

    def __repr__(self) -> str:
        return f"OpenAIProvider(base_url={self.base_url!r}, model={self.model!r})"

    def close(self) -> None:
        """Close the HTTP client if this provider created it."""
        if self._owns_client:
            self._client.close()

    def complete(
        self,
        *,
        model: str | None,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] = (),
        response_format: Mapping[str, Any] | None = None,
    ) -> ModelReply:
        """One ``POST /chat/completions``.

        Raises:
            ConfigError: no model is named here or in configuration.
            ProviderError: the server could not be reached after the retries,
                answered with an error, or sent something that is not a chat
                completion.
        """
        chosen = model or self.model
        if not chosen:
            raise ConfigError(
                "no model: name one on the agent (model: ...), or configure a default with "
                "flowkit.ai.configure(model=...) or FLOWKIT_AI_MODEL"
            )
        body: dict[str, Any] = {"model": chosen, "messages": list(messages)}
        if tools:
            body["tools"] = list(tools)
        if response_format is not None:
            body["response_format"] = dict(response_format)
        data = self._post("/chat/completions", body)
        return _parse_completion(data, self._url("/chat/completions"))

    def moderate(self, text: str) -> Moderation:
        """One ``POST /moderations``.

        Raises:
            ProviderError: the endpoint could not be reached or its answer is unusable.
        """
        body: dict[str, Any] = {"input": text}
        if self.moderation_model:
            body["model"] = self.moderation_model
        url = self._url("/moderations")
        data = self._post("/moderations", body)
        try:
            result = data["results"][0]
            flagged = bool(result["flagged"])
            categories = tuple(
                sorted(name for name, hit in (result.get("categories") or {}).items() if hit)
            )
        except (KeyError, IndexError, TypeError):
            raise ProviderError(
                f"{url} answered without 'results[0].flagged': {_preview(data)}"
            ) from None
        return Moderation(flagged=flagged, categories=categories)

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        import httpx

        url = self._url(path)
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                response = self._client.post(url, json=body, headers=self._client_headers)
            except httpx.TimeoutException as exc:
                error = ProviderError(
                    f"{url} did not answer within {self.timeout:g}s ({type(exc).__name__})",
                    retryable=True,
                )
            except httpx.TransportError as exc:
                error = ProviderError(
                    f"cannot reach {url}: {exc or type(exc).__name__}", retryable=True
                )
            else:
                if response.status_code < 400:
                    return _json_body(response, url)
                error = _http_error(response, url)
                wait = _retry_after(response)
            if not error.retryable or attempt > self.max_retries:
                if error.retryable and attempt > 1:
                    raise ProviderError(
                        f"{error} (gave up after {attempt} attempts)",
                        status=error.status,
                        retryable=True,
                    ) from None
                raise error
            if wait is None:
                wait = self.backoff * 2 ** (attempt - 1)
            self._sleep(min(max(wait, 0.0), self.max_backoff))


def _json_body(response: httpx.Response, url: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ProviderError(
            f"{url} answered {response.status_code} with a body that is not JSON: "
            f"{response.text[:200]!r}",
            status=response.status_code,
        ) from None


def _http_error(response: httpx.Response, url: str) -> ProviderError:
    status = response.status_code
    detail = response.text[:300]
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        error = response.json().get("error")
        detail = error.get("message", detail) if isinstance(error, dict) else str(error or detail)
    hint = ""
    if status == 401:
        hint = " (check the API key: flowkit.ai.configure(api_key=...) or OPENAI_API_KEY)"
    elif status == 404:
        hint = " (check the base URL and the model name)"
    return ProviderError(
        f"{url} answered {status}: {detail}{hint}",
        status=status,
        retryable=status in RETRY_STATUSES,
    )


def _retry_after(response: httpx.Response) -> float | None:
    """The wait a ``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms`` asks for."""
    millis = response.headers.get("retry-after-ms")
    if millis:
        with contextlib.suppress(ValueError):
            return float(millis) / 1000
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(when.timestamp() - time.time(), 0.0)
    return None


def _preview(data: Any) -> str:
    text = json.dumps(data, default=str)
    return text if len(text) <= 200 else f"{text[:197]}..."


def _parse_completion(data: Any, url: str) -> ModelReply:
    try:
        choice = data["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise ProviderError(
            f"{url} answered without 'choices[0].message' (is it a chat-completions "
            f"endpoint?): {_preview(data)}"
        ) from None
    calls = []
    for index, raw in enumerate(message.get("tool_calls") or ()):
        function = raw.get("function") if isinstance(raw, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise ProviderError(f"{url} sent a malformed tool call: {_preview(raw)}")
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        calls.append(
            ToolCall(
                id=str(raw.get("id") or f"call_{index}"),
                name=function["name"],
                arguments=arguments,
            )
        )
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        # Some servers send a list of content parts.
        if isinstance(content, list):
            content = "".join(
                str(part.get("text", "")) for part in content if isinstance(part, dict)
            )
        else:
            content = str(content)
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
    return ModelReply(
        content=content,
        tool_calls=tuple(calls),
        usage=Usage.from_json(usage),
        model=data.get("model") if isinstance(data.get("model"), str) else None,
        finish_reason=choice.get("finish_reason"),
    )


# --- the scripted provider ----------------------------------------------------------------------


def reply(
    content: str | Mapping[str, Any] | None = None,
    *,
    tool_calls: Sequence[ToolCall] = (),
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
) -> ModelReply:
    """A scripted reply; a mapping ``content`` is sent as JSON text."""
    text = json.dumps(content) if isinstance(content, Mapping) else content
    return ModelReply(
        content=text,
        tool_calls=tuple(tool_calls),
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
        finish_reason="tool_calls" if tool_calls else "stop",
    )


_call_ids = iter(range(1, 1 << 62))
_call_ids_lock = threading.Lock()


def tool_call(name: str, /, _id: str | None = None, **arguments: Any) -> ToolCall:
    """A scripted tool call: ``tool_call("lookup_order", order_id="A-1")``."""
    if _id is None:
        with _call_ids_lock:
            _id = f"call_{next(_call_ids)}"
    return ToolCall(id=_id, name=name, arguments=json.dumps(arguments))


@attrs.frozen(kw_only=True)
class ScriptedCall:
    """One request a :class:`ScriptedProvider` received."""

    model: str | None
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    response_format: dict[str, Any] | None = None

    @property
    def tool_names(self) -> list[str]:
        """The names of the tools offered."""
        return [tool["function"]["name"] for tool in self.tools]

    @property
    def last_message(self) -> dict[str, Any]:
        """The last message sent (the user prompt or a tool result)."""
        return self.messages[-1]

    def text(self) -> str:
        """Every message's content joined, for ``in`` assertions."""
        return "\n".join(str(message.get("content") or "") for message in self.messages)


Responder = Callable[[ScriptedCall], ModelReply]


class ScriptedProvider:
    """A provider that answers from a script, for tests.

    Each request takes the next item of the script: a :class:`ModelReply`
    (build them with :func:`reply` and :func:`tool_call`), a plain string (a
    text reply), a mapping (a JSON reply), an exception (raised), or a
    function of the :class:`ScriptedCall` returning a reply. Every request is
    recorded in :attr:`calls`, and with ``log`` also appended to a JSON-lines
    file, so a test can see what a crashed process had sent.

    Args:
        script: the replies, in order.
        moderation: what :meth:`moderate` answers: a :class:`Moderation`,
            a function of the text, or an exception to raise. Default: not flagged.
        log: a file to append one JSON line per request to.
    """

    def __init__(
        self,
        script: Sequence[Any] = (),
        *,
        moderation: Moderation | Callable[[str], Moderation] | BaseException | None = None,
        log: str | os.PathLike[str] | None = None,
    ) -> None:
        self._script: deque[Any] = deque(script)
        self._lock = threading.Lock()
        self.calls: list[ScriptedCall] = []
        self.moderated: list[str] = []
        self.moderation = moderation
        self.log = Path(log) if log is not None else None

    def __repr__(self) -> str:
        return f"ScriptedProvider({len(self._script)} replies left, {len(self.calls)} calls)"

    # --- scripting ---------------------------------------------------------------------------

    def add(self, *items: Any) -> ScriptedProvider:
        """Append replies to the script; returns the provider."""
        with self._lock:
            self._script.extend(items)
        return self

    def reply(
        self,
        content: str | Mapping[str, Any] | None = None,
        *,
        prompt_tokens: int = 10,
        completion_tokens: int = 5,
    ) -> ScriptedProvider:
        """Append a text (or JSON) reply."""
        return self.add(
            reply(content, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        )

    def call_tools(self, *calls: ToolCall, content: str | None = None) -> ScriptedProvider:
        """Append a reply that calls tools."""
        return self.add(reply(content, tool_calls=calls))

    @property
    def remaining(self) -> int:
        """How many scripted replies are left."""
        return len(self._script)

    # --- the protocol ------------------------------------------------------------------------

    def complete(
        self,
        *,
        model: str | None,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] = (),
        response_format: Mapping[str, Any] | None = None,
    ) -> ModelReply:
        """Record the request and answer with the next scripted item.

        Raises:
            ProviderError: the script is used up.
        """
        call = ScriptedCall(
            model=model,
            messages=json.loads(json.dumps(list(messages))),
            tools=json.loads(json.dumps(list(tools))),
            response_format=dict(response_format) if response_format is not None else None,
        )
        with self._lock:
            self.calls.append(call)
            if self.log is not None:
                line = {"pid": os.getpid(), "model": model, "messages": call.messages}
                with self.log.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(line) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
            if not self._script:
                raise ProviderError(
                    f"the scripted provider has no reply left for request {len(self.calls)} "
                    f"(last message: {_preview(call.messages[-1] if call.messages else None)})"
                )
            item = self._script.popleft()
        return _scripted(item, call)

    def moderate(self, text: str) -> Moderation:
        """Record ``text`` and answer as configured (default: not flagged).

        Raises:
            BaseException: the configured exception.
        """
        with self._lock:
            self.moderated.append(text)
        result = self.moderation
        if isinstance(result, BaseException):
            raise result
        if callable(result):
            return result(text)
        return result or Moderation(flagged=False)

    # --- assertions --------------------------------------------------------------------------

    def assert_called(self, times: int) -> None:
        """Assert the number of requests received.

        Raises:
            AssertionError: it differs.
        """
        if len(self.calls) != times:
            raise AssertionError(f"expected {times} model calls, got {len(self.calls)}")

    def assert_exhausted(self) -> None:
        """Assert every scripted reply was used.

        Raises:
            AssertionError: some are left.
        """
        if self._script:
            raise AssertionError(f"{len(self._script)} scripted replies were never requested")

    def assert_sent(self, text: str, call: int = -1) -> None:
        """Assert that request ``call`` (default: the last) contained ``text``.

        Raises:
            AssertionError: it did not, or there was no such request.
        """
        if not self.calls:
            raise AssertionError("no model call was made")
        found = self.calls[call].text()
        if text not in found:
            raise AssertionError(f"{text!r} not in model call {call}: {found[:500]!r}")

    def assert_tools_offered(self, *names: str, call: int = -1) -> None:
        """Assert that request ``call`` offered exactly ``names`` as tools (any order).

        Raises:
            AssertionError: it offered others, or there was no such request.
        """
        if not self.calls:
            raise AssertionError("no model call was made")
        offered = self.calls[call].tool_names
        if sorted(offered) != sorted(names):
            raise AssertionError(f"model call {call} offered {offered}, expected {list(names)}")


def _scripted(item: Any, call: ScriptedCall) -> ModelReply:
    if isinstance(item, BaseException):
        raise item
    if isinstance(item, ModelReply):
        return item
    if isinstance(item, (str, Mapping)):
        return reply(item)
    if callable(item):
        produced = item(call)
        return produced if isinstance(produced, ModelReply) else reply(produced)
    raise TypeError(f"cannot use {item!r} as a scripted reply")


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The requests a :class:`ScriptedProvider` logged to ``path`` (one per line)."""
    file = Path(path)
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line]


# --- choosing the provider ----------------------------------------------------------------------

_settings: dict[str, Any] = {}
_default: Provider | None = None
_from_settings: Provider | None = None
#: The key under which an engine's own provider is kept in ``Engine.resources``.
PROVIDER_KEY = "flowkit.ai.provider"
_choice_lock = threading.Lock()


def configure(
    provider: Provider | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
) -> None:
    """Set the process-wide model provider, or the settings of the default HTTP one.

    ``configure(ScriptedProvider([...]))`` uses that provider everywhere (except
    engines given their own with :func:`use_provider`);
    ``configure(base_url=..., api_key=..., model=...)`` sets up the
    OpenAI-compatible provider used when none is given (the environment
    variables fill in what is not passed). Calling it again replaces what
    was set before; ``configure()`` resets everything.

    Raises:
        TypeError: ``provider`` does not implement the provider protocol.
    """
    global _default, _from_settings
    if provider is not None and not isinstance(provider, Provider):
        raise TypeError(f"{provider!r} is not a provider (it needs complete() and moderate())")
    with _choice_lock:
        _default = provider
        _settings.clear()
        given = {
            "base_url": base_url,
            "api_key": api_key,
            "model": model,
            "timeout": timeout,
            "max_retries": max_retries,
        }
        _settings.update({key: value for key, value in given.items() if value is not None})
        old, _from_settings = _from_settings, None
    if isinstance(old, OpenAIProvider):
        old.close()


@contextlib.contextmanager
def use_provider(provider: Provider, *, engine: Any = None) -> Iterator[Provider]:
    """Use ``provider`` for one engine, or process-wide, inside a ``with`` block.

    ``with flowkit.ai.use_provider(scripted, engine=engine): engine.run(...)``.
    Without ``engine`` every engine without one of its own uses it. The
    previous choice is restored on exit.

    Raises:
        TypeError: ``provider`` does not implement the provider protocol.
    """
    global _default
    if not isinstance(provider, Provider):
        raise TypeError(f"{provider!r} is not a provider (it needs complete() and moderate())")
    with _choice_lock:
        if engine is not None:
            previous = engine.resources.get(PROVIDER_KEY)
            engine.resources[PROVIDER_KEY] = provider
        else:
            previous = _default
            _default = provider
    try:
        yield provider
    finally:
        with _choice_lock:
            if engine is not None:
                if previous is None:
                    engine.resources.pop(PROVIDER_KEY, None)
                else:
                    engine.resources[PROVIDER_KEY] = previous
            else:
                _default = previous


def set_provider(provider: Provider | None, *, engine: Any) -> None:
    """Give ``engine`` its own provider for its lifetime (None removes it).

    Raises:
        TypeError: ``provider`` does not implement the provider protocol.
    """
    if provider is not None and not isinstance(provider, Provider):
        raise TypeError(f"{provider!r} is not a provider (it needs complete() and moderate())")
    with _choice_lock:
        if provider is None:
            engine.resources.pop(PROVIDER_KEY, None)
        else:
            engine.resources[PROVIDER_KEY] = provider


def provider_for(resources: Mapping[str, Any] | None) -> Provider:
    """The provider a step uses, given its engine's ``resources`` (see the module docs).

    Raises:
        ConfigError: nothing is configured: no provider, no settings, and
            neither ``FLOWKIT_AI_BASE_URL`` nor ``OPENAI_API_KEY`` is set.
    """
    global _from_settings
    with _choice_lock:
        found = resources.get(PROVIDER_KEY) if resources is not None else None
        if found is None:
            found = _default
        if found is None:
            found = _from_settings
        if found is not None:
            return found
        env = os.environ
        if not (
            _settings.get("base_url")
            or _settings.get("api_key")
            or env.get("FLOWKIT_AI_BASE_URL")
            or env.get("OPENAI_BASE_URL")
            or env.get("OPENAI_API_KEY")
        ):
            raise ConfigError(
                "no model provider is configured: call flowkit.ai.configure(base_url=..., "
                "api_key=..., model=...) or set OPENAI_API_KEY (and FLOWKIT_AI_BASE_URL for "
                "another OpenAI-compatible server); tests use flowkit.ai.ScriptedProvider"
            )
        _from_settings = OpenAIProvider(**_settings)
        return _from_settings
