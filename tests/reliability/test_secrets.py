"""Keys never leak: not in logs (DEBUG, every library llmos drives), exceptions, reprs, attempt
records or CLI output; a key goes only to its own provider's base_url, and never over plain http
to another machine unless that is explicitly allowed.

Two keys are used: an ``sk-...`` key (key-shaped, so pattern scrubbing would catch it too) and
an AI21 key of no known shape, which only llmos's memory of loaded keys can scrub.
"""

from __future__ import annotations

import json
import logging
import socket
import traceback
from collections.abc import Iterator

import psutil
import pytest
from tests.servers.base import LoopbackServer
from tests.servers.faults import ANSWER, FaultApp

from llmos import (
    AllProvidersFailedError,
    CircuitBreaker,
    Client,
    ConfigurationError,
    RetryPolicy,
)
from llmos.cli import main as cli_main
from llmos.errors import LLMOSError

from .conftest import (
    AI21,
    AI21_KEY,
    OPENAI,
    OPENAI_KEY,
    ROUTES,
    TIMEOUT,
    FakeClock,
    Route,
    provider_settings,
)

KEYS = (OPENAI_KEY, AI21_KEY)
ROUTE_PARAMS = [pytest.param(r, id=r.provider) for r in ROUTES]
#: A TEST-NET-3 address (RFC 5737): never routed. Only the refusal test names it.
UNROUTABLE = "203.0.113.7"


def assert_clean(text: str, where: str) -> None:
    for key in KEYS:
        assert key not in text, f"a key leaked into {where}"
    # A fragment long enough to identify a key is a leak too.
    for key in KEYS:
        assert key[-12:] not in text, f"part of a key leaked into {where}"


def error_texts(error: BaseException) -> Iterator[tuple[str, str]]:
    """Every text an exception offers a user or a log: str, repr, traceback, body, attempts."""
    yield "str(error)", str(error)
    yield "repr(error)", repr(error)
    yield "traceback", "".join(traceback.format_exception(error))
    yield "error.args", repr(error.args)
    if isinstance(error, LLMOSError):
        yield "error.body", json.dumps(error.body, default=repr)
        yield "error.attempts", json.dumps([a.model_dump() for a in error.attempts])
        yield "error.message", error.message
    if error.__context__ is not None:
        yield "repr(error.__context__)", repr(error.__context__)
    for sub in getattr(error, "errors", []):
        yield from error_texts(sub)


def run_leaky_calls(server: LoopbackServer, app: FaultApp, tag: str) -> list[LLMOSError]:
    """Calls through both providers that succeed, fail, retry, fall back and echo keys back."""
    errors: list[LLMOSError] = []
    clock = FakeClock()
    with Client(
        env={},
        clock=clock,
        providers=provider_settings(server.url),
        circuit_breaker=CircuitBreaker(failure_threshold=1000, clock=clock),
        retry=RetryPolicy(max_attempts=2, jitter=0),
        timeout=TIMEOUT,
    ) as client:
        for route, other in ((OPENAI, AI21), (AI21, OPENAI)):
            assert client.chat(route.target, tag).text == ANSWER
            assert client.stream(route.target, tag).text() == ANSWER
            for faults in (
                ["echo401"],
                ["503", "echo401"],
                ["reset", "reset"],
                ["malformed", "malformed"],
                ["html", "html"],
                ["stall", "stall"],
            ):
                app.script(tag, *faults, path=route.path)
                with pytest.raises(LLMOSError) as info:
                    client.chat(route.target, tag)
                errors.append(info.value)
            app.script(tag, "echo401", path=route.path)
            app.script(tag, "echo401", path=other.path)
            with pytest.raises(AllProvidersFailedError) as failed:
                client.chat(route.target, tag, fallbacks=[other.target])
            errors.append(failed.value)
            app.script(tag, "echo401", path=route.path)
            with pytest.raises(LLMOSError) as info:
                list(client.stream(route.target, tag))
            errors.append(info.value)
    return errors


def test_no_key_in_debug_logs_of_llmos_or_the_libraries_it_drives(
    fault_server: LoopbackServer,
    fault_app: FaultApp,
    tag: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: openai, httpx, httpcore, httpx2...
    errors = run_leaky_calls(fault_server, fault_app, tag)
    assert len(errors) == 16
    for error in errors:  # as an application would log them
        logging.getLogger("app").exception("call failed", exc_info=error)
    assert len(caplog.records) > 50, "the libraries' debug logs were not captured"
    names = {r.name.split(".")[0] for r in caplog.records}
    assert {"httpx", "httpcore", "llmos", "app"} <= names
    for record in caplog.records:
        assert_clean(record.getMessage(), f"a log record of {record.name}")
    assert_clean(caplog.text, "the formatted log")


def test_authorization_headers_in_library_debug_lines_are_masked(
    fault_server: LoopbackServer, tag: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Client(env={}, providers=provider_settings(fault_server.url), timeout=TIMEOUT) as client:
        for route in ROUTES:
            client.chat(route.target, tag)  # the libraries are imported and their loggers guarded
    caplog.set_level(logging.DEBUG)
    libraries = ("openai", "httpx", "httpx2", "httpcore", "httpcore2")
    names = [n for n in logging.Logger.manager.loggerDict if n.split(".")[0] in libraries]
    assert {"openai", "httpx", "httpcore"} <= {n.split(".")[0] for n in names}
    for name in names:  # what a library's header dump at DEBUG would look like
        for key in KEYS:
            logging.getLogger(name).debug(
                "send_request_headers %r", [(b"Authorization", f"Bearer {key}".encode())]
            )
            logging.getLogger(name).debug(
                "Request options: %s", {"headers": {"Authorization": f"Bearer {key}"}}
            )
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 * len(names)
    for line in lines:
        assert_clean(line, "a library debug line")
        # llmos masks the key; the openai SDK's own filter may blank the whole header first.
        assert "Bearer ***" in line or "'<redacted>'" in line


def test_no_key_in_any_exception_text_body_or_attempt_record(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    errors = run_leaky_calls(fault_server, fault_app, tag)
    echoed = [e for e in errors if "Authorization: Bearer ***" in str(e)]
    assert echoed, "the server's echo of the key never came back (the test would prove nothing)"
    for error in errors:
        for where, text in error_texts(error):
            assert_clean(text, f"{where} of {type(error).__name__}")


def test_no_key_in_the_repr_or_str_of_clients_providers_settings_and_responses(
    fault_server: LoopbackServer, tag: str
) -> None:
    with Client(env={}, providers=provider_settings(fault_server.url), timeout=TIMEOUT) as client:
        objects: list[object] = [client, client._core.registry]
        for route in ROUTES:
            response = client.chat(route.target, tag)
            provider = client.provider(route.provider)
            objects += [
                provider,
                provider.settings,
                provider.settings.api_key,
                response,
                response.attempts,
                vars(provider),
            ]
            assert_clean(response.model_dump_json(), "a response's JSON")
        for obj in objects:
            assert_clean(repr(obj), f"repr of {type(obj).__name__}")
            assert_clean(str(obj), f"str of {type(obj).__name__}")
            assert_clean(f"{obj}", f"format of {type(obj).__name__}")
        assert repr(client.provider("openai").settings.api_key) == "Secret('***')"


@pytest.fixture
def cli_env(fault_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> LoopbackServer:
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "AI21_API_KEY",
        "AI21_BASE_URL",
        "HF_TOKEN",
        "LLMOS_MODEL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fault_server.url + "/v1")
    monkeypatch.setenv("AI21_API_KEY", AI21_KEY)
    monkeypatch.setenv("AI21_BASE_URL", fault_server.url + "/studio/v1")
    return fault_server


@pytest.mark.parametrize("route", ROUTE_PARAMS)
def test_no_key_in_cli_chat_output_json_plain_or_failing(
    route: Route,
    cli_env: LoopbackServer,
    fault_app: FaultApp,
    tag: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main(["chat", "--json", "--model", route.target, tag]) == 0
    out = capsys.readouterr()
    answer = json.loads(out.out)
    assert answer["target"] == route.target and answer["message"]["content"] == ANSWER
    assert_clean(out.out + out.err, "llmos chat --json")

    assert cli_main(["chat", "--model", route.target, tag]) == 0
    out = capsys.readouterr()
    assert ANSWER in out.out
    assert_clean(out.out + out.err, "llmos chat")

    fault_app.script(tag, *["echo401"] * 2)
    assert cli_main(["chat", "--json", "--model", route.target, tag]) == 1
    out = capsys.readouterr()
    assert "AuthenticationError" in out.err and "***" in out.err
    assert_clean(out.out + out.err, "llmos chat --json, failing")


def test_no_key_in_cli_models_output(
    cli_env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["models", "--json"]) == 0
    out = capsys.readouterr()
    rows = json.loads(out.out)
    configured = {row["provider"] for row in rows if row.get("configured")}
    assert {"openai", "ai21"} <= configured  # the keys were seen...
    assert_clean(out.out + out.err, "llmos models --json")  # ...and never shown
    assert cli_main(["models"]) == 0
    out = capsys.readouterr()
    assert_clean(out.out + out.err, "llmos models")


def test_each_key_goes_only_to_its_own_providers_base_url(
    fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    providers = provider_settings(fault_server.url)
    providers["vllm"] = {"kind": "openai-compatible", "base_url": fault_server.url + "/v1"}
    first = len(fault_app.authorizations)
    env = {"OPENAI_API_KEY": OPENAI_KEY, "AI21_API_KEY": AI21_KEY}
    with Client(
        env=env, providers=providers, retry=RetryPolicy.none(), timeout=TIMEOUT, clock=FakeClock()
    ) as client:
        fault_app.script(tag, "503", path=OPENAI.path)
        assert client.chat(OPENAI.target, tag, fallbacks=[AI21.target]).target == AI21.target
        client.chat(OPENAI.target, tag)
        client.stream(AI21.target, tag).text()
        client.chat("vllm:served-model", tag)
    seen = fault_app.authorizations[first:]
    assert [path for path, _ in seen] == [
        OPENAI.path,
        AI21.path,
        OPENAI.path,
        AI21.path,
        OPENAI.path,
    ]
    assert seen[0][1] == seen[2][1] == f"Bearer {OPENAI_KEY}"
    assert seen[1][1] == seen[3][1] == f"Bearer {AI21_KEY}"
    # The compatible server has no key of its own: it gets a placeholder, not OpenAI's key.
    assert seen[4][1] is not None and OPENAI_KEY not in seen[4][1] and AI21_KEY not in seen[4][1]


@pytest.mark.parametrize("route", ROUTE_PARAMS)
def test_a_redirect_to_another_origin_never_carries_the_key(
    route: Route, fault_server: LoopbackServer, fault_app: FaultApp, tag: str
) -> None:
    elsewhere = FaultApp()
    with LoopbackServer(elsewhere) as other:
        fault_app.redirect_to = other.url + route.path
        fault_app.script(tag, "redirect")
        with Client(
            env={},
            providers=provider_settings(fault_server.url),
            retry=RetryPolicy.none(),
            timeout=TIMEOUT,
        ) as client:
            try:
                client.chat(route.target, tag)
            except LLMOSError as exc:  # ai21 (httpx) does not follow redirects at all
                assert exc.status_code == 307
    # The openai SDK follows it; its transport drops Authorization for another origin.
    for _, authorization in elsewhere.authorizations:
        assert authorization is None or all(key not in authorization for key in KEYS)


@pytest.mark.parametrize("route", ROUTE_PARAMS)
def test_a_key_over_plain_http_to_another_host_is_refused_before_connecting(
    route: Route,
) -> None:
    url = f"http://{UNROUTABLE}"
    with Client(
        env={}, providers=provider_settings(url), retry=RetryPolicy(max_attempts=3), timeout=TIMEOUT
    ) as client:
        with pytest.raises(ConfigurationError) as info:
            client.chat(route.target, "hello", fallbacks=[])
        # Any attempt to connect would have raised APIConnectionError or APITimeoutError.
        assert type(info.value) is ConfigurationError
        assert "allow_insecure_http=True" in str(info.value) and UNROUTABLE in str(info.value)
        assert len(info.value.attempts) == 1  # refused once, not retried
        connections = psutil.Process().net_connections(kind="tcp")
        assert not [c for c in connections if c.raddr and c.raddr.ip == UNROUTABLE]


def _own_address() -> str | None:
    """This machine's non-loopback IPv4 address (a UDP connect sends nothing), if any."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((UNROUTABLE, 9))
        address = str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.mark.parametrize("route", ROUTE_PARAMS)
def test_plain_http_to_a_non_loopback_host_needs_allow_insecure_http(route: Route) -> None:
    address = _own_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to serve on")
    app = FaultApp()
    with LoopbackServer(app, host=address) as server:
        with (
            Client(
                env={},
                providers=provider_settings(server.url),
                retry=RetryPolicy.none(),
                timeout=TIMEOUT,
            ) as client,
            pytest.raises(ConfigurationError),
        ):
            client.chat(route.target, "hello")
        assert server.total_hits() == 0  # refused before anything was sent
        allowed = provider_settings(server.url, allow_insecure_http=True)
        with Client(env={}, providers=allowed, retry=RetryPolicy.none(), timeout=TIMEOUT) as client:
            assert client.chat(route.target, "hello").text == ANSWER
        assert server.total_hits() == 1
