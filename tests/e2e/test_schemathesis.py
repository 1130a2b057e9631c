"""schemathesis against the service's own OpenAPI schema, signed in as admin: whatever it
generates, no response is a 5xx.

A real `draftloop serve` on Postgres (the strict backend: it refuses text SQLite stores, such as
NUL characters) with the model, Serper and Pexels behind the loopback fakes of this test's
event loop, so any task the fuzzer queues runs against fakes, never the network. The schemathesis
CLI runs as an asyncio subprocess: it makes blocking HTTP calls of its own, and the loop must
stay free to serve the fakes meanwhile.

Checks, besides ``not_a_server_error``: ``unsupported_method`` (an undocumented method is a 405,
not a handler run) and ``content_type_conformance`` (a response's Content-Type is the
documented one). The status-code and response-schema checks are left out: the schema documents
only each route's success code and free-form ``dict`` bodies, so they would flag every 400/404
and say nothing.

~3,300 cases over ~52 operations (10 examples per operation in the fuzzing phase, plus the
coverage and stateful phases; fixed seed, no shrinking): ~80 s on an idle 2-core box, longer
when other test runs share the cores. The LangGraph routes document their bodies too
(app/http/lg_schemas.py), so their fields are fuzzed like the task API's.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import httpx
import pytest

from devtools.identities import TEST_ADMIN_ID, admin_headers, token_for
from tests.e2e.conftest import report_line

# The backend and server-launcher fixtures are test_service_process's.
from tests.e2e.test_service_process import (  # noqa: F401 - fixtures
    backend,
    database_url,
    launcher,
    postgres_database,
    postgres_test_database,
)
from tests.service_process import ServiceLauncher

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
SEED = 20261128
MAX_EXAMPLES = 10
# The CLI's whole run (45-150 s here, by load). Past this the test fails.
RUN_TIMEOUT = 300.0
# Each request; a handler that never answers is a failure to report, not a hang.
REQUEST_TIMEOUT = 20.0
# The floor that keeps the test from passing vacuously (e.g. a schema that lost its routes or
# every case filtered away): the app has ~52 operations and they yield ~3,300 cases.
MIN_OPERATIONS = 40
MIN_CASES = 1000

# Event streams answer for as long as their task or run lives (one awaiting approval: forever),
# so a fuzzer's request to one only ends at its timeout. Their handlers' 404/400 paths are the
# same lookups as the JSON routes beside them, which are fuzzed.
# A thread's stream never ends by itself, whatever its runs do.
STREAMS = ("/api/tasks/{task_id}/events", "/threads/{thread_id}/runs/{run_id}/stream", "/threads/{thread_id}/stream")
LOGOUT = "/api/auth/logout"

# Headers for every request; logout gets a token of its own (another jti of the same admin), so
# fuzzing it revokes only that one instead of the admin's token mid-run.
CONFIG = f"""\
headers = {{ Authorization = "${{SCHEMATHESIS_ADMIN_AUTH}}" }}

[[operations]]
include-path = "{LOGOUT}"
headers = {{ Authorization = "${{SCHEMATHESIS_LOGOUT_AUTH}}" }}
"""

pytestmark = [pytest.mark.timeout(420), pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)]


@pytest.fixture
def schemathesis_config(tmp_path: Path) -> Path:
    # A sync fixture: written outside the event loop (blockbuster).
    path = tmp_path / "schemathesis.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def schemathesis_command(base_url: str, config: Path) -> list[str]:
    command = [
        str(SCHEMATHESIS), "--config-file", str(config), "--no-color",
        "run", f"{base_url}/schema/openapi.json",
        "--checks", "not_a_server_error,unsupported_method,content_type_conformance",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        # A failure is reported as generated: shrinking one can take minutes of requests.
        "--no-shrink",
        # One worker: with two, hypothesis describing its lambdas from two threads trips
        # CPython 3.11's "AST constructor recursion depth mismatch" (a schemathesis error, not ours).
        "--workers", "1",
        "--request-timeout", str(REQUEST_TIMEOUT),
        # Path parameters are free strings; most of the negative ones are filtered out as
        # unusable in a URL, which the health check would report as an error of ours.
        "--suppress-health-check", "filter_too_much",
        "--generation-database", "none",
    ]
    for path in STREAMS:
        command += ["--exclude-path", path]
    return command


def parse_summary(output: str) -> tuple[int, int]:
    """(operations tested, cases generated) from the CLI's summary."""
    tested = re.search(r"^\s*Tested:\s+(\d+)", output, re.MULTILINE)
    generated = re.search(r"^\s*(\d+) generated", output, re.MULTILINE)
    if tested is None or generated is None:
        pytest.fail(f"no summary in schemathesis's output:\n{output[-5000:]}")
    return int(tested.group(1)), int(generated.group(1))


async def run_schemathesis(command: list[str], cwd: Path) -> tuple[int, str]:
    env = {
        **os.environ,
        "SCHEMATHESIS_ADMIN_AUTH": admin_headers()["Authorization"],
        "SCHEMATHESIS_LOGOUT_AUTH": f"Bearer {token_for(TEST_ADMIN_ID, 'admin')}",
        # A developer's proxy must not see (or swallow) loopback traffic.
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        # Wide enough that the summary's lines are not wrapped.
        "COLUMNS": "200",
    }
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"schemathesis did not finish within {RUN_TIMEOUT:.0f}s")
    assert process.returncode is not None
    return process.returncode, stdout.decode(errors="replace")


async def test_no_generated_request_gets_a_server_error(
    launcher: ServiceLauncher, schemathesis_config: Path, tmp_path: Path, http_client: httpx.AsyncClient,  # noqa: F811 - the imported fixture
    record_property: pytest.RecordProperty, request: pytest.FixtureRequest,
) -> None:
    server = await launcher.start("schemathesis")

    started = asyncio.get_running_loop().time()
    returncode, output = await run_schemathesis(schemathesis_command(server.url, schemathesis_config), tmp_path)
    elapsed = asyncio.get_running_loop().time() - started

    tested, cases = parse_summary(output)
    record_property("schemathesis_operations", tested)
    record_property("schemathesis_cases", cases)
    report_line(request.config, f"schemathesis: {cases} generated cases across {tested} operations "
                                f"in {elapsed:.0f}s, exit {returncode}")
    print(output)  # the whole report, shown by pytest when the test fails

    assert returncode == 0, f"schemathesis found failures (exit {returncode}):\n{output[-20000:]}"
    assert tested >= MIN_OPERATIONS, f"only {tested} operations tested:\n{output[-5000:]}"
    assert cases >= MIN_CASES, f"only {cases} cases generated:\n{output[-5000:]}"
    # Still up, and the admin's token still works: the run did not revoke or break it.
    response = await http_client.get(f"{server.url}/api/tasks", headers=admin_headers())
    assert response.status_code == 200, response.text
