"""Cron expressions: checking one, and the tick after a moment in the cron's time zone.

Five fields as cron has them, or six with seconds last (croniter's form), so a schedule can
tick every few seconds. A schedule is read in its time zone (UTC when none), so "0 9 * * *" in
Europe/Paris is 09:00 Paris time across daylight-saving changes; the ticks are stored in UTC.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter


class BadSchedule(ValueError):
    """A schedule or time zone this server cannot read; the message says why."""


def check_schedule(schedule: str) -> None:
    fields = schedule.split()
    if len(fields) not in (5, 6):
        raise BadSchedule(f"{schedule!r} is not a cron expression: five fields (minute hour day month weekday), "
                          "or six with seconds last, e.g. '*/5 * * * *'")
    try:
        croniter(schedule)
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise BadSchedule(f"{schedule!r} is not a cron expression: {exc}") from exc


# Zones read so far: loading one reads its tzdata file, which the event loop must not wait on.
_ZONES: dict[str, tzinfo] = {}


def zone(name: str | None) -> tzinfo:
    """The time zone a schedule is read in; UTC when none is given. Reads the zone's file the
    first time: on the event loop, call load_zone first."""
    if name is None:
        return UTC
    found = _ZONES.get(name)
    if found is None:
        try:
            found = _ZONES[name] = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise BadSchedule(f"{name!r} is not an IANA time zone (e.g. 'Europe/Paris')") from exc
    return found


async def load_zone(name: str | None) -> tzinfo:
    """zone(), with the zone's file read off the event loop."""
    if name is None or name in _ZONES:
        return zone(name)
    return await asyncio.to_thread(zone, name)


def next_tick(schedule: str, timezone: str | None, after: datetime,
              end_time: datetime | None = None) -> datetime | None:
    """The first tick strictly after ``after``, in UTC; None when it would fall past ``end_time``
    (or the expression never matches again, e.g. a 30 February)."""
    local = after.astimezone(zone(timezone))
    try:
        following = croniter(schedule, local).get_next(datetime)
    except CroniterBadDateError:
        return None
    if not isinstance(following, datetime):
        return None
    tick = following.astimezone(UTC)
    if end_time is not None and tick > end_time:
        return None
    return tick
