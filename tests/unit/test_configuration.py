"""app.configuration.Configuration: every setting of a process, read once from one mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.configuration import Configuration
from tools.llm.errors import ProviderConfigError


def test_one_mapping_configures_the_service_the_graph_the_models_the_clients_and_the_database(
    tmp_path: Path,
) -> None:
    config = Configuration.from_env({
        "PORT": "9001", "MAX_REVISIONS": "4", "LLM_PROVIDER": "ollama", "JUDGE_PROVIDER": "openai",
        "JUDGE_MODEL": "judge-7b", "SERPER_TIMEOUT": "2.5", "DRAFTLOOP_DATA_DIR": str(tmp_path / "data"),
    })
    assert config.service.port == 9001
    assert config.pipeline.graph.max_revisions == 4
    assert config.pipeline.llm.provider == "ollama"
    assert config.pipeline.judge is not None
    assert (config.pipeline.judge.provider, config.pipeline.judge.openai_model) == ("openai", "judge-7b")
    assert config.pipeline.clients.serper_timeout == 2.5
    assert config.database_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'draftloop.db'}"


def test_a_commands_database_url_replaces_the_variable(tmp_path: Path) -> None:
    override = "postgresql+asyncpg://u@h/db"
    config = Configuration.from_env({"DATABASE_URL": "sqlite:///ignored.db"}, database_url=override)
    assert config.database_url == override


def test_a_model_setting_that_cannot_be_used_is_a_provider_config_error() -> None:
    with pytest.raises(ProviderConfigError, match="LLM_TIMEOUT"):
        Configuration.from_env({"LLM_TIMEOUT": "soon", "DATABASE_URL": "sqlite:///unused.db"})


def test_load_reads_dotenv_under_the_shells_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("WORKER_CONCURRENCY=3\nHOST=0.0.0.0\n", encoding="utf-8")
    monkeypatch.setenv("HOST", "127.0.0.2")
    # Set, then removed: monkeypatch then removes what .env adds when the test ends.
    monkeypatch.setenv("WORKER_CONCURRENCY", "1")
    monkeypatch.delenv("WORKER_CONCURRENCY")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///unused.db")
    config = Configuration.load(dotenv=dotenv)
    assert (config.service.concurrency, config.service.host) == (3, "127.0.0.2")
