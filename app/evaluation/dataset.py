"""The eval's data (evals/README.md): the frozen request set, search fixtures, calibration cases."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LABELS = ("good", "weak", "bad")
DEFECTS = ("structured_nonsense", "repetition_loop", "truncated", "preamble", "placeholder", "invented_url",
           "contradicts_sources", "wrong_format", "off_length", "off_topic")
KINDS = ("content", "revise", "answer", "unsupported")


class DatasetError(ValueError):
    """A data file is missing or does not have the documented shape; the message names it."""


@dataclass(frozen=True)
class EvalRequest:
    id: str
    turns: tuple[str, ...]
    fields: dict[str, Any]
    fixture: str
    expect: dict[str, Any]
    tags: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        """What the report groups it under: its content type, or its kind when it is not content."""
        if self.expect.get("kind") in ("content", "revise"):
            return str(self.expect.get("content_type") or "blog_post")
        return str(self.expect.get("kind"))


@dataclass(frozen=True)
class Fixture:
    web: list[dict[str, Any]] = field(default_factory=list)
    news: list[dict[str, Any]] = field(default_factory=list)
    shopping: list[dict[str, Any]] = field(default_factory=list)
    pages: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CalibrationCase:
    id: str
    label: str
    defect: str | None
    catch: str | None
    note: str
    request: dict[str, Any]
    sources: list[dict[str, Any]]
    judge: dict[str, int]
    markdown: str


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from None


def load_requests(path: Path) -> list[EvalRequest]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DatasetError(f"{path} does not exist (the request set; see evals/README.md)") from None
    requests: list[EvalRequest] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            request = EvalRequest(
                id=str(raw["id"]),
                turns=tuple(str(t) for t in raw["turns"]),
                fields=dict(raw.get("fields") or {}),
                fixture=str(raw.get("fixture") or ""),
                expect=dict(raw["expect"]),
                tags=tuple(raw.get("tags") or ()),
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DatasetError(f"{path}:{number}: not a request of the documented shape ({exc})") from None
        if not request.turns:
            raise DatasetError(f"{path}:{number}: {request.id} has no turns")
        if request.expect.get("kind") not in KINDS:
            raise DatasetError(f"{path}:{number}: expect.kind must be one of {', '.join(KINDS)}")
        if request.id in seen:
            raise DatasetError(f"{path}:{number}: the id {request.id} is used twice")
        seen.add(request.id)
        requests.append(request)
    return requests


def load_fixture(directory: Path, name: str) -> Fixture:
    if not name:
        return Fixture()
    raw = _read_json(directory / f"{name}.json")
    return Fixture(web=list(raw.get("web") or []), news=list(raw.get("news") or []),
                   shopping=list(raw.get("shopping") or []), pages=dict(raw.get("pages") or {}))


def load_images(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return list(_read_json(path).get("photos") or [])


def load_calibration(directory: Path) -> list[CalibrationCase]:
    cases: list[CalibrationCase] = []
    for meta_path in sorted(directory.glob("*.json")):
        raw = _read_json(meta_path)
        draft_path = meta_path.with_suffix(".md")
        if not draft_path.exists():
            raise DatasetError(f"{draft_path} is missing (every calibration case is a .json and a .md)")
        if raw.get("label") not in LABELS:
            raise DatasetError(f"{meta_path}: label must be one of {', '.join(LABELS)}")
        if raw.get("label") == "bad" and raw.get("defect") not in DEFECTS:
            raise DatasetError(f"{meta_path}: a bad case names its defect, one of {', '.join(DEFECTS)}")
        cases.append(CalibrationCase(
            id=str(raw.get("id") or meta_path.stem),
            label=raw["label"],
            defect=raw.get("defect"),
            catch=raw.get("catch"),
            note=str(raw.get("note") or ""),
            request=dict(raw.get("request") or {}),
            sources=list(raw.get("sources") or []),
            judge={k: int(v) for k, v in (raw.get("judge") or {}).items()},
            markdown=draft_path.read_text(encoding="utf-8"),
        ))
    return cases
