"""A Chalice app's schedules, timed the way EventBridge times them (all UTC).

Schedules come from the app's own ``@app.schedule`` registrations, so nothing
is repeated here. ``cron(...)`` fire times come from aws-croniter (six AWS
fields with ``?``, ranges, lists, steps, ``L``, ``W``, ``#``); descriptions from
cron-descriptor. ``rate(N unit)`` counts from when the rule is created, as
EventBridge does: locally that is when ``up`` starts (to the minute, EventBridge's
precision), so the first fire is one period later.
"""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aws_croniter import AwsCroniter
from chalice import Chalice
from chalice.app import ScheduledEventConfig, ScheduleExpression
from cron_descriptor import ExpressionDescriptor, Options

from chalice_loop.naming import rule_name

# No AWS account locally: moto's default account id, as in events/scheduled.json.
LOCAL_ACCOUNT_ID = "123456789012"

_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_CRON = re.compile(r"cron\((.*)\)", re.DOTALL)
_UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


class ScheduleError(ValueError):
    """A schedule expression EventBridge would reject (or that we cannot time)."""


@dataclass(frozen=True)
class Schedule:
    """One ``@app.schedule`` registration."""

    name: str
    expression: str
    description: str = ""

    def rule_name(self, app_name: str, stage: str) -> str:
        """The EventBridge rule ``chalice deploy`` creates (chalice/deploy/appgraph.py)."""
        return rule_name(app_name, stage, self.name)


def app_schedules(app: Chalice) -> list[Schedule]:
    """Every schedule the app registered (blueprints included, once registered)."""
    schedules = []
    for source in app.event_sources:
        if isinstance(source, ScheduledEventConfig):
            expression = source.schedule_expression
            if isinstance(expression, ScheduleExpression):
                expression = expression.to_string()
            schedules.append(Schedule(source.name, str(expression), source.description))
    return schedules


class Timetable(Protocol):
    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after ``moment``; None if there is none."""


@dataclass(frozen=True)
class RateTimetable:
    period: timedelta
    created: datetime  # when the rule was created, to the minute

    def next_after(self, moment: datetime) -> datetime:
        periods = max(0, (moment - self.created) // self.period) + 1
        return self.created + periods * self.period


@dataclass(frozen=True)
class CronTimetable:
    cron: AwsCroniter

    def next_after(self, moment: datetime) -> datetime | None:
        return self.cron.get_next(moment.astimezone(UTC), 1)[0]


def _rate(expression: str) -> tuple[int, str] | None:
    """``(value, unit)`` of a valid rate expression; None if it is not one."""
    match = _RATE.fullmatch(expression.strip())
    if match is None:
        return None
    value, unit = int(match[1]), match[2]
    if value < 1:
        raise ScheduleError(f"{expression}: the value must be a positive number")
    if (value == 1) != (not unit.endswith("s")):
        raise ScheduleError(
            f"{expression}: use a singular unit for 1 and a plural one otherwise "
            "(rate(1 hour), rate(5 hours))"
        )
    return value, unit


def _cron_fields(expression: str) -> str | None:
    match = _CRON.fullmatch(expression.strip())
    if match is None:
        return None
    fields = match[1].split()
    if len(fields) != 6:
        raise ScheduleError(
            f"{expression}: AWS cron needs 6 fields "
            f"(minutes hours day-of-month month day-of-week year), got {len(fields)}"
        )
    if fields[2].upper() == "LW":
        raise ScheduleError(f"{expression}: 'LW' is not supported by the local scheduler")
    if fields[4].upper() == "L":
        # "L" alone is the last day of the week, Saturday; aws-croniter never fires it.
        fields[4] = "7"
    return " ".join(fields)


def timetable(expression: str, created: datetime) -> Timetable:
    """Parse ``rate(...)``/``cron(...)``; raise :class:`ScheduleError` with the reason."""
    rate = _rate(expression)
    if rate is not None:
        value, unit = rate
        return RateTimetable(
            value * _UNITS[unit.rstrip("s")],
            created.astimezone(UTC).replace(second=0, microsecond=0),
        )
    fields = _cron_fields(expression)
    if fields is None:
        raise ScheduleError(
            f"{expression!r}: expected rate(value unit) or cron(six fields), as EventBridge does"
        )
    try:
        return CronTimetable(AwsCroniter(fields))
    except ValueError as exc:  # aws-croniter's validation errors are ValueErrors
        raise ScheduleError(f"{expression}: {exc}") from None


def describe(expression: str) -> str:
    """A human-readable description, e.g. ``Every 15 minutes, ... Monday through Friday``."""
    rate = _rate(expression)
    if rate is not None:
        value, unit = rate
        return f"Every {unit}" if value == 1 else f"Every {value} {unit}"
    fields = _cron_fields(expression)
    if fields is None:
        raise ScheduleError(f"{expression!r}: not a rate(...) or cron(...) expression")
    # A seconds field up front makes the form unambiguous (Quartz's 7 fields), and AWS
    # numbers days of the week 1-7 from Sunday, not 0-6.
    options = Options(
        day_of_week_start_index_zero=False, use_24hour_time_format=True, locale_code="en_US"
    )
    return ExpressionDescriptor(f"0 {fields}", options).get_description()


def next_times(table: Timetable, after: datetime, count: int = 3) -> list[datetime]:
    times: list[datetime] = []
    moment: datetime | None = after
    while len(times) < count and moment is not None:
        moment = table.next_after(moment)
        if moment is not None:
            times.append(moment)
    return times


def event_time(moment: datetime) -> str:
    """EventBridge's ``time`` field: UTC, to the second, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduled_event(
    rule_name: str, when: datetime, region: str, account: str = LOCAL_ACCOUNT_ID
) -> dict[str, Any]:
    """The event EventBridge delivers to a scheduled rule's Lambda target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": event_time(when),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account}:rule/{rule_name}"],
        "detail": {},
    }


@dataclass(frozen=True)
class Due:
    schedule: Schedule
    when: datetime  # the scheduled fire time


class Scheduler:
    """Keeps each schedule's next fire time against an injectable clock.

    It does no waiting itself: the caller asks :meth:`due` and sleeps for
    :meth:`seconds_until_next`. A fire time missed by more than one period
    (the machine slept) fires once, then the schedule resumes from now.
    """

    def __init__(self, schedules: list[Schedule], clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self.started = clock()
        self._tables: dict[str, Timetable] = {}
        for schedule in schedules:
            try:
                self._tables[schedule.name] = timetable(schedule.expression, self.started)
            except ScheduleError as exc:
                raise ScheduleError(f"schedule {schedule.name!r}: {exc}") from None
        self._schedules = {s.name: s for s in schedules}
        self._next = {name: t.next_after(self.started) for name, t in self._tables.items()}

    def next_fire(self, name: str) -> datetime | None:
        return self._next[name]

    def upcoming(self, name: str, count: int = 3) -> list[datetime]:
        first = self._next[name]
        if first is None:
            return []
        return [first, *next_times(self._tables[name], first, count - 1)]

    def due(self) -> list[Due]:
        """The schedules whose fire time has come, in time order; each advances."""
        now = self._clock()
        ready = [(when, name) for name, when in self._next.items() if when and when <= now]
        for _, name in ready:
            self._next[name] = self._tables[name].next_after(now)
        return [Due(self._schedules[name], when) for when, name in sorted(ready)]

    def seconds_until_next(self) -> float | None:
        pending = [when for when in self._next.values() if when is not None]
        if not pending:
            return None
        return max(0.0, (min(pending) - self._clock()).total_seconds())
