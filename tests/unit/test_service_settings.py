"""Service settings that decide what a process does: its role, its workers, their niceness."""

from __future__ import annotations

import pytest

from app.cli.serve import proxy_header_options
from app.service_settings import ServiceSettings


def test_a_plain_server_serves_http_and_runs_graphs_itself() -> None:
    settings = ServiceSettings.from_env({})
    assert (settings.role, settings.workers, settings.runs_graphs) == ("all", 0, True)


def test_a_run_is_resumed_three_times_unless_max_resumes_says_otherwise() -> None:
    assert ServiceSettings.from_env({}).max_resumes == 3
    assert ServiceSettings.from_env({"MAX_RESUMES": "0"}).max_resumes == 0


@pytest.mark.parametrize(("env", "runs_graphs"), [
    ({"DRAFTLOOP_ROLE": "api"}, False),
    ({"WORKERS": "2"}, False),
    ({"DRAFTLOOP_ROLE": "worker"}, True),
    ({"DRAFTLOOP_ROLE": " API "}, False),
])
def test_an_api_role_or_supervised_workers_take_graph_runs_off_the_http_process(
    env: dict[str, str], runs_graphs: bool
) -> None:
    assert ServiceSettings.from_env(env).runs_graphs is runs_graphs


@pytest.mark.parametrize(("env", "message"), [
    ({"DRAFTLOOP_ROLE": "both"}, "DRAFTLOOP_ROLE must be one of all, api, worker"),
    ({"WORKERS": "-1"}, "WORKERS must be between 0 and 64"),
    ({"WORKERS": "two"}, "WORKERS must be an integer"),
    ({"WORKER_NICE": "20"}, "WORKER_NICE must be between 0 and 19"),
    ({"AUTH_CACHE_SECONDS": "-1"}, "AUTH_CACHE_SECONDS must be between 0 and 60"),
    ({"KEEP_ALIVE_SECONDS": "0"}, "KEEP_ALIVE_SECONDS must be between 1 and 3600"),
    ({"MAX_RESUMES": "-1"}, "MAX_RESUMES must be between 0 and 100"),
    ({"FORWARDED_ALLOW_IPS": "127.0.0.1, proxy.local"}, "FORWARDED_ALLOW_IPS must list IP addresses, networks or \\*"),
])
def test_bad_process_settings_are_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServiceSettings.from_env(env)


def test_forwarded_headers_are_ignored_unless_forwarded_allow_ips_names_the_proxies() -> None:
    # uvicorn's own default believes X-Forwarded-For from loopback: it must be turned off.
    assert proxy_header_options(ServiceSettings.from_env({})) == {"proxy_headers": False}
    assert proxy_header_options(ServiceSettings.from_env({"FORWARDED_ALLOW_IPS": " "})) == {"proxy_headers": False}
    named = ServiceSettings.from_env({"FORWARDED_ALLOW_IPS": "127.0.0.1, 10.0.0.0/8,::1"})
    assert proxy_header_options(named) == {"proxy_headers": True,
                                           "forwarded_allow_ips": ["127.0.0.1", "10.0.0.0/8", "::1"]}
    assert ServiceSettings.from_env({"FORWARDED_ALLOW_IPS": "*"}).forwarded_allow_ips == ("*",)
