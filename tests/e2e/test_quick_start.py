"""The README's quick start, run as written: its shell lines as one script, with no terminal,
against a real `draftloop serve` on a free port, to a completed task.

Only what a test must change is changed: the port (the server's own, free one), where the
`draftloop` executable is (this interpreter's), and the model (the loopback fake Ollama, so the
run takes seconds). Everything else, the create-user line included, is the README's.
"""

from __future__ import annotations

import asyncio
import json
import re
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devtools.fakes.writer import GraphFakes
from tests.service_process import DRAFTLOOP, RUN_TIMEOUT, ServiceLauncher, service_env

README = Path(__file__).resolve().parents[2] / "README.md"
README_PORT = "localhost:8000"
README_DRAFTLOOP = ".venv/bin/draftloop"


def quick_start_script(readme: str) -> str:
    """The shell block of the quick start that creates the admin and sends the request."""
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = [textwrap.dedent(block) for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL)]
    [script] = [block for block in blocks if "create-user" in block]
    return script


@pytest.fixture
async def launcher(graph_fakes: GraphFakes, tmp_path: Path) -> AsyncIterator[ServiceLauncher]:
    servers = ServiceLauncher(service_env(graph_fakes, tmp_path, None), cwd=tmp_path)
    try:
        yield servers
    finally:
        await servers.close()


async def test_the_readme_quick_start_runs_as_a_script_without_a_terminal_to_a_completed_task(
        launcher: ServiceLauncher, tmp_path: Path) -> None:
    script = quick_start_script(await asyncio.to_thread(README.read_text, encoding="utf-8"))
    assert "--password-stdin" in script and README_PORT in script and README_DRAFTLOOP in script
    server = await launcher.start("quick-start")
    port = server.url.rsplit(":", 1)[1]
    script = script.replace(README_PORT, f"localhost:{port}").replace(README_DRAFTLOOP, str(DRAFTLOOP))

    process = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", script, cwd=tmp_path, env=launcher.env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"the quick start did not finish within {RUN_TIMEOUT:.0f}s\n{launcher.describe()}")
    out, err = stdout.decode(), stderr.decode()
    assert process.returncode == 0, f"exit {process.returncode}\n--- stdout\n{out}\n--- stderr\n{err}"

    assert "created admin 'admin'" in out
    assert "event: status" in out and '"status":"completed"' in out
    task = json.loads(out.strip().splitlines()[-1])
    assert task["status"] == "completed", task
    assert task["result"]["markdown"] and task["model"] == {"provider": "ollama", "name": "llama3.2"}
    assert "Traceback" not in err
    # The operator's log in the server's own output.
    log = server.tail()
    assert f"task queued task={task['id']}" in log and f"task started task={task['id']}" in log
    assert re.search(rf"task ended: status=completed attempts=1 score=\S+ duration=\S+s model=ollama/llama3.2 "
                     rf"task={task['id']}", log), log
