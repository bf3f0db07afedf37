"""The local scheduler against a controlled clock: EventBridge's rate and cron
semantics (UTC), descriptions, the scheduled event, and reading the app's schedules."""

from datetime import UTC, datetime

import pytest
from chalice import Blueprint, Chalice, Cron, Rate
from chalice.app import CloudWatchEvent
from chalice_loop.scheduler import (
    Schedule,
    ScheduleError,
    Scheduler,
    app_schedules,
    describe,
    next_times,
    scheduled_event,
    timetable,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(expression: str, after: str, count: int = 3, created: str | None = None) -> list[str]:
    table = timetable(expression, utc(created or after))
    return [t.strftime("%Y-%m-%d %H:%M %a") for t in next_times(table, utc(after), count)]


class FakeClock:
    def __init__(self, start: str) -> None:
        self.now = utc(start)

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: str) -> None:
        self.now = utc(moment)


# -- rate(...): counted from when the rule is created (`up` starts), to the minute


def test_rate_1_day_fires_a_day_after_creation_then_daily():
    assert fires("rate(1 day)", "2026-11-26T16:47:31") == [
        "2026-11-27 16:47 Fri",
        "2026-11-28 16:47 Sat",
        "2026-11-29 16:47 Sun",
    ]


def test_rate_5_minutes_keeps_its_phase_from_creation():
    assert fires("rate(5 minutes)", "2026-11-26T16:47:31") == [
        "2026-11-26 16:52 Thu",
        "2026-11-26 16:57 Thu",
        "2026-11-26 17:02 Thu",
    ]
    # Asked later, the times stay on the creation grid (16:47 + 5 min * k), strictly after.
    assert fires("rate(5 minutes)", "2026-11-26T18:02:00", 2, created="2026-11-26T16:47:31") == [
        "2026-11-26 18:07 Thu",
        "2026-11-26 18:12 Thu",
    ]


# -- cron(...): six AWS fields, UTC


def test_cron_every_day_at_noon():
    assert fires("cron(0 12 * * ? *)", "2026-11-26T11:59:59") == [
        "2026-11-26 12:00 Thu",
        "2026-11-27 12:00 Fri",
        "2026-11-28 12:00 Sat",
    ]
    # Strictly after: at 12:00 itself the next one is tomorrow's.
    assert fires("cron(0 12 * * ? *)", "2026-11-26T12:00:00", 1) == ["2026-11-27 12:00 Fri"]


def test_cron_quarter_hours_in_office_hours_on_weekdays():
    expression = "cron(0/15 8-17 ? * MON-FRI *)"
    assert fires(expression, "2026-11-26T16:50:30") == [
        "2026-11-26 17:00 Thu",
        "2026-11-26 17:15 Thu",
        "2026-11-26 17:30 Thu",
    ]
    # Friday's last is 17:45; the weekend is skipped.
    assert fires(expression, "2026-11-27T17:44:59") == [
        "2026-11-27 17:45 Fri",
        "2026-11-30 08:00 Mon",
        "2026-11-30 08:15 Mon",
    ]


def test_cron_last_day_of_the_month_including_leap_february():
    assert fires("cron(0 0 L * ? *)", "2028-01-31T00:00:00") == [
        "2028-02-29 00:00 Tue",
        "2028-03-31 00:00 Fri",
        "2028-04-30 00:00 Sun",
    ]
    assert fires("cron(0 0 L * ? *)", "2027-02-01T00:00:00", 1) == ["2027-02-28 00:00 Sun"]


def test_cron_day_31_skips_the_months_without_one():
    # pyawscron 1.0.7 raises "day is out of range for month" here; aws-croniter skips them.
    assert fires("cron(0 12 31 * ? *)", "2027-01-31T13:00:00") == [
        "2027-03-31 12:00 Wed",
        "2027-05-31 12:00 Mon",
        "2027-07-31 12:00 Sat",
    ]


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # 15 Nov 2026 is a Sunday: the nearest weekday is Monday the 16th.
        ("cron(0 9 15W * ? *)", "2026-11-01T00:00:00", "2026-11-16 09:00 Mon"),
        # 15 Aug 2026 is a Saturday: Friday the 14th.
        ("cron(0 9 15W * ? *)", "2026-08-01T00:00:00", "2026-08-14 09:00 Fri"),
        # 1 May 2027 is a Saturday: W never leaves the month, so Monday the 3rd.
        ("cron(0 9 1W * ? *)", "2027-04-25T00:00:00", "2027-05-03 09:00 Mon"),
        # 31 May 2026 is a Sunday: Friday the 29th.
        ("cron(0 9 31W * ? *)", "2026-05-01T00:00:00", "2026-05-29 09:00 Fri"),
    ],
)
def test_cron_w_is_the_nearest_weekday_within_the_month(expression, after, expected):
    assert fires(expression, after, 1) == [expected]


def test_cron_hash_is_the_nth_weekday_of_the_month():
    assert fires("cron(0 10 ? * 6#3 *)", "2026-11-26T00:00:00") == [
        "2026-12-18 10:00 Fri",
        "2027-01-15 10:00 Fri",
        "2027-02-19 10:00 Fri",
    ]
    assert fires("cron(0 10 ? * MON#1 *)", "2026-11-26T00:00:00") == [
        "2026-12-07 10:00 Mon",
        "2027-01-04 10:00 Mon",
        "2027-02-01 10:00 Mon",
    ]


def test_cron_l_in_day_of_week_is_the_last_such_day_or_saturday_alone():
    assert fires("cron(0 10 ? * 6L *)", "2026-11-26T00:00:00") == [
        "2026-11-27 10:00 Fri",
        "2026-12-25 10:00 Fri",
        "2027-01-29 10:00 Fri",
    ]
    # "L" alone is the last day of the week (Saturday); aws-croniter alone never fires it.
    assert fires("cron(0 0 ? * L *)", "2026-11-26T00:00:00", 2) == [
        "2026-11-28 00:00 Sat",
        "2026-12-05 00:00 Sat",
    ]


def test_cron_lists_ranges_months_and_years():
    assert fires("cron(15,45 1-2 ? * SUN,SAT *)", "2026-11-26T00:00:00", 5) == [
        "2026-11-28 01:15 Sat",
        "2026-11-28 01:45 Sat",
        "2026-11-28 02:15 Sat",
        "2026-11-28 02:45 Sat",
        "2026-11-29 01:15 Sun",
    ]
    assert fires("cron(0 0 1 */4 ? 2027-2028)", "2026-11-26T00:00:00", 7) == [
        "2027-01-01 00:00 Fri",
        "2027-05-01 00:00 Sat",
        "2027-09-01 00:00 Wed",
        "2028-01-01 00:00 Sat",
        "2028-05-01 00:00 Mon",
        "2028-09-01 00:00 Fri",
    ]  # and then never: the year range is over


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("rate(1 minutes)", "singular unit for 1"),
        ("rate(5 hour)", "singular unit for 1"),
        ("rate(0 minutes)", "positive number"),
        ("rate(1 week)", "expected rate(value unit) or cron"),
        ("cron(0 12 * * *)", "needs 6 fields"),
        ("cron(0 12 * * * *)", "One must be a question mark"),
        ("cron(60 12 * * ? *)", "Invalid minute value '60'"),
        ("cron(0 0 ? * MON-FRI/2 *)", "Invalid day-of-week value"),
        ("cron(0 0 LW * ? *)", "'LW' is not supported"),
        ("every day", "expected rate(value unit) or cron"),
    ],
)
def test_invalid_expressions_are_rejected_with_the_reason(expression, reason):
    with pytest.raises(ScheduleError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        timetable(expression, utc("2026-11-26T00:00:00"))


@pytest.mark.parametrize(
    ("expression", "text"),
    [
        ("rate(1 day)", "Every day"),
        ("rate(5 minutes)", "Every 5 minutes"),
        ("cron(0 12 * * ? *)", "At 12:00"),
        (
            "cron(0/15 8-17 ? * MON-FRI *)",
            "Every 15 minutes, between 08:00 and 17:59, Monday through Friday",
        ),
        ("cron(0 0 L * ? *)", "At 00:00, on the last day of the month"),
        ("cron(0 9 15W * ? *)", "At 09:00, on the weekday nearest day 15 of the month"),
        # AWS numbers days from SUN=1: 6 is Friday (cron-descriptor's default would say Saturday).
        ("cron(0 10 ? * 6#3 *)", "At 10:00, on the third Friday of the month"),
        ("cron(0 10 ? * 2-6 *)", "At 10:00, Monday through Friday"),
    ],
)
def test_descriptions_read_the_aws_six_field_form(expression, text):
    assert describe(expression) == text


def test_scheduler_fires_each_schedule_when_due_and_only_once():
    clock = FakeClock("2026-11-26T16:47:31")
    scheduler = Scheduler(
        [Schedule("often", "rate(5 minutes)"), Schedule("noon", "cron(0 17 * * ? *)")], clock
    )
    assert scheduler.next_fire("often") == utc("2026-11-26T16:52:00")
    assert scheduler.seconds_until_next() == 269.0
    clock.set("2026-11-26T16:51:59")
    assert scheduler.due() == []
    clock.set("2026-11-26T16:52:00")
    assert [(d.schedule.name, d.when) for d in scheduler.due()] == [
        ("often", utc("2026-11-26T16:52:00"))
    ]
    assert scheduler.due() == []  # not twice
    clock.set("2026-11-26T17:00:05")
    assert [(d.schedule.name, d.when) for d in scheduler.due()] == [
        ("often", utc("2026-11-26T16:57:00")),
        ("noon", utc("2026-11-26T17:00:00")),
    ]
    assert scheduler.next_fire("often") == utc("2026-11-26T17:02:00")
    assert scheduler.next_fire("noon") == utc("2026-11-27T17:00:00")


def test_scheduler_fires_a_missed_schedule_once_then_resumes_from_now():
    clock = FakeClock("2026-11-26T16:47:31")
    scheduler = Scheduler([Schedule("often", "rate(5 minutes)")], clock)
    clock.set("2026-11-26T19:30:10")  # the laptop slept through 32 fire times
    assert [d.when for d in scheduler.due()] == [utc("2026-11-26T16:52:00")]
    assert scheduler.next_fire("often") == utc("2026-11-26T19:32:00")
    assert scheduler.upcoming("often") == [
        utc("2026-11-26T19:32:00"),
        utc("2026-11-26T19:37:00"),
        utc("2026-11-26T19:42:00"),
    ]


def test_scheduler_rejects_an_invalid_schedule_up_front():
    with pytest.raises(ScheduleError, match="bad"):
        Scheduler([Schedule("bad", "cron(0 12 * * * *)")], FakeClock("2026-11-26T00:00:00"))


def test_schedules_are_read_from_the_app_registrations():
    app = Chalice(app_name="demo")
    reports = Blueprint(__name__)

    @app.schedule(Rate(1, unit=Rate.DAYS), name="daily")
    def daily(event):  # pragma: no cover - only registered
        return None

    @app.schedule(Cron("0/15", "8-17", "?", "*", "MON-FRI", "*"))
    def office(event):  # pragma: no cover
        return None

    @reports.schedule("cron(0 0 L * ? *)", name="month_end", description="close the month")
    def month_end(event):  # pragma: no cover
        return None

    @app.lambda_function(name="not_a_schedule")
    def plain(event, context):  # pragma: no cover
        return None

    app.register_blueprint(reports, name_prefix="reports_")
    assert app_schedules(app) == [
        Schedule("daily", "rate(1 day)"),
        Schedule("office", "cron(0/15 8-17 ? * MON-FRI *)"),
        Schedule("reports_month_end", "cron(0 0 L * ? *)", "close the month"),
    ]


def test_the_scheduled_event_is_eventbridge_shaped_and_names_the_deployed_rule():
    schedule = Schedule("nightly", "rate(1 day)")
    rule = schedule.rule_name("shop", "dev")
    event = scheduled_event(rule, utc("2026-11-26T03:00:00.250"), "eu-west-1")
    assert rule == "shop-dev-nightly-event"
    assert event["resources"] == [
        "arn:aws:events:eu-west-1:123456789012:rule/shop-dev-nightly-event"
    ]
    assert event["time"] == "2026-11-26T03:00:00Z"
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    # chalice turns it into the CloudWatchEvent the handler receives (a bare {} raises KeyError).
    parsed = CloudWatchEvent(event, context=None)
    assert parsed.region == "eu-west-1" and parsed.detail == {} and parsed.version == "0"
