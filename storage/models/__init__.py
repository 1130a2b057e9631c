"""SQLAlchemy 2.0 typed models, portable across SQLite and PostgreSQL, one module per aggregate.

Every change here needs a migration in storage/migrations/versions; the schema test
(alembic compare_metadata) fails when the two drift apart. Importing this package registers
every table on ``Base.metadata`` (Alembic's env.py relies on that), so callers import the
models from here.
"""

from storage.models.assistants import Assistant, AssistantVersion
from storage.models.audit import AuditEvent
from storage.models.base import MAX_ROW_ID, Base, EventId, JSONType, Money, UTCDateTime, new_id, utcnow
from storage.models.crons import Cron
from storage.models.posts import Post, PostStatus, SlugCounter
from storage.models.settings import Setting, SettingChange
from storage.models.tasks import TERMINAL_STATUSES, Attempt, Task, TaskEvent, TaskStatus, Thread, ThreadStatus, Usage
from storage.models.users import ROLE_RANKS, ApiKey, RevokedToken, Role, User
from storage.models.webhooks import DeliveryStatus, WebhookAttempt, WebhookDelivery

__all__ = [
    "MAX_ROW_ID", "ROLE_RANKS", "TERMINAL_STATUSES", "ApiKey", "Assistant", "AssistantVersion", "Attempt", "AuditEvent",
    "Base", "Cron", "DeliveryStatus", "EventId", "JSONType", "Money",
    "Post", "PostStatus", "RevokedToken", "Role", "Setting", "SettingChange", "SlugCounter", "Task", "TaskEvent",
    "TaskStatus", "Thread", "ThreadStatus", "UTCDateTime", "Usage", "User", "WebhookAttempt", "WebhookDelivery",
    "new_id", "utcnow",
]
