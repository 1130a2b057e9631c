"""Structured logs: every record carries the task id of the run that emitted it, as text or JSON."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime

current_task_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_task_id", default=None)


class TaskIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # A record may name its task itself (extra={"task_id": ...}): one logged outside the
        # run's own context, such as the run log's lines, written from the event writer.
        if getattr(record, "task_id", None) is None:
            record.task_id = current_task_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        task_id = getattr(record, "task_id", None)
        if task_id:
            payload["task_id"] = task_id
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        task_id = getattr(record, "task_id", None)
        return f"{text} task={task_id}" if task_id else text


def configure_logging(log_format: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(TaskIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Per-request client logs would drown the task logs (and can carry URLs with query keys).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
