"""Listing the bucket as key ranges that can be listed side by side.

One continuation token lists one range at a time, so the bucket is cut into
ranges by its key scheme (``reports/<YYYY-MM-DD>/<request-id>.json``):

1. ``reports/``, with ``Delimiter="/"``: its day prefixes (and keys right under it).
2. Beside it, the bucket's top level, also with the delimiter: keys without a ``/``
   and the top-level prefixes other than ``reports/`` (any a user put there).
3. Each day, and every other top-level prefix, without a delimiter: its keys.
4. A day whose first page is full and whose request ids are UUIDs (Lambda's are
   random, so a day's keys spread evenly over their first hex digits) is cut
   further at points of its remaining id space, about :data:`PAGES_PER_RANGE`
   pages each, at most :data:`MAX_DAY_RANGES` ranges.

The ranges are disjoint and cover every key: each key belongs to exactly one, and
a range ignores what its listing shows beyond its own bounds (the point where a
later range starts is only approximated by ``StartAfter``). A day of other keys
is listed as one range; nothing else depends on the ids' shape.
"""

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib.reports import REPORTS_PREFIX

DELIMITER = "/"
PAGES_PER_RANGE = 4
MAX_DAY_RANGES = 16
MAX_WAITING_RANGES = 1000  # discovered, not yet listed: prefix listings pause beyond it
KEYS_PER_PAGE = 1000
_UUID_KEY = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.json")
_ID_SPACE = 16**3  # the first three hex digits of an id place it


@dataclass(frozen=True)
class KeyRange:
    """The keys that start with ``prefix``, after ``after`` (exclusive) or from ``start``
    (inclusive), and before ``end`` (exclusive), but not under ``outside`` (a prefix
    another range lists); unbounded where None."""

    prefix: str = ""
    after: str | None = None
    start: str | None = None
    end: str | None = None
    outside: str | None = None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.startswith(self.prefix) and self.admits(key)

    def admits(self, name: str) -> bool:
        """Within the bounds (a key, or a prefix that a listing rolled up)."""
        return (
            (self.after is None or name > self.after)
            and (self.start is None or name >= self.start)
            and (self.end is None or name < self.end)
            and (self.outside is None or not name.startswith(self.outside))
        )

    def start_after(self) -> str | None:
        """``StartAfter`` for a first page: at or just below the range's first key."""
        if self.after is not None:
            return self.after
        if self.start is None:
            return None
        # Below ``start`` and above every key before it that a UUID-named report could have.
        head, last = self.start[:-1], self.start[-1]
        return head + chr(ord(last) - 1) + "~" if ord(last) > 0 else head or None

    def to_json(self) -> dict[str, str]:
        bounds = {
            "after": self.after,
            "start": self.start,
            "end": self.end,
            "outside": self.outside,
        }
        return {"prefix": self.prefix, **{k: v for k, v in bounds.items() if v is not None}}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> "KeyRange":
        return cls(**data)

    def describe(self) -> str:
        where = f"under {_quote(self.prefix)}" if self.prefix else "in the bucket"
        bounds = [
            f"after {_quote(self.after)}" if self.after is not None else "",
            f"from {_quote(self.start)}" if self.start is not None else "",
            f"before {_quote(self.end)}" if self.end is not None else "",
            f"outside {_quote(self.outside)}" if self.outside is not None else "",
        ]
        return " ".join(["keys", where, *(b for b in bounds if b)])


def _quote(text: str) -> str:
    return json.dumps(text)


def _after_prefix(prefix: str) -> str:
    """The first name above every name that starts with ``prefix`` (``a/`` -> ``a0``)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass
class Range:
    """One range being listed: what is left of it, and its place in the listing."""

    bounds: KeyRange
    rest: KeyRange  # not listed yet
    delimited: bool = False  # listed with Delimiter="/": its prefixes become ranges
    day: bool = False  # a day of reports: may be cut after its first page
    token: str | None = None
    pages: int = 0
    busy: bool = False  # a page in flight
    done: bool = False

    @classmethod
    def of(cls, bounds: KeyRange, delimited: bool = False, day: bool = False) -> "Range":
        return cls(bounds, bounds, delimited, day)

    def order(self) -> str:
        return self.rest.after or self.rest.start or self.rest.prefix


@dataclass
class Listing:
    """Every range of the bucket found so far; which to list next; what a page holds.

    Pure: the caller sends the requests (:meth:`request`) and hands back the pages."""

    reports_prefix: str = REPORTS_PREFIX
    ranges: list[Range] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.ranges:  # both at once: the days need not wait for the top level
            top, reports = KeyRange(outside=self.reports_prefix), KeyRange(self.reports_prefix)
            self.ranges = [Range.of(reports, delimited=True), Range.of(top, delimited=True)]

    def next(self) -> Range | None:
        """The first range in key order that can list a page now."""
        waiting = sum(1 for r in self.ranges if not r.done and not r.busy and not r.delimited)
        ready = [
            r
            for r in self.ranges
            if not r.done and not r.busy and not (r.delimited and waiting >= MAX_WAITING_RANGES)
        ]
        return min(ready, key=Range.order, default=None)

    @property
    def finished(self) -> bool:
        return all(r.done for r in self.ranges)

    @property
    def busy(self) -> int:
        return sum(r.busy for r in self.ranges)

    def unlisted(self) -> list[KeyRange]:
        """What the run has not listed: the rest of every range not done, in key order."""
        return [r.rest for r in sorted(self.ranges, key=Range.order) if not r.done]

    def request(self, r: Range) -> dict[str, str]:
        """``ListObjectsV2`` parameters (without ``Bucket``) for the next page of ``r``."""
        params = {"Prefix": r.bounds.prefix} if r.bounds.prefix else {}
        if r.delimited:
            params["Delimiter"] = DELIMITER
        if r.token is not None:
            params["ContinuationToken"] = r.token
        elif (start_after := r.rest.start_after()) is not None:
            params["StartAfter"] = start_after
        r.busy = True
        return params

    def failed(self, r: Range) -> None:
        r.busy = False  # its rest stays unlisted

    def page(self, r: Range, page: dict[str, Any]) -> list[dict[str, Any]]:
        """Take a page of ``r``: its objects within the range; new ranges for its prefixes."""
        r.busy, r.pages = False, r.pages + 1
        bounds, rest = r.bounds, r.rest
        contents = page.get("Contents", [])
        prefixes = [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        beyond = any(bounds.end is not None and name >= bounds.end for name in _names(page))
        objects = [o for o in contents if o["Key"] in rest]
        for prefix in (p for p in prefixes if rest.admits(p)):
            self._found(r, prefix)
        last_key = contents[-1]["Key"] if contents else None
        last_prefix = prefixes[-1] if prefixes else None
        # The listing moved past its last name; every other bound of the range stays.
        if last_prefix is not None and (last_key is None or last_prefix > last_key):
            r.rest = replace(rest, start=max(rest.start or "", _after_prefix(last_prefix)))
        elif last_key is not None:
            r.rest = replace(rest, after=last_key)
        r.done = beyond or not page.get("IsTruncated")
        r.token = None if r.done else page["NextContinuationToken"]
        if r.day and r.pages == 1 and not r.done:
            self._cut(r, contents)
        return objects

    def _found(self, parent: Range, prefix: str) -> None:
        day = parent.bounds.prefix == self.reports_prefix
        self.ranges.append(Range.of(KeyRange(prefix), day=day))

    def _cut(self, r: Range, contents: list[dict[str, Any]]) -> None:
        """Cut the rest of a day whose ids are UUIDs into ranges of ~PAGES_PER_RANGE pages."""
        prefix = r.bounds.prefix
        first, last = (contents[0]["Key"][len(prefix) :], contents[-1]["Key"][len(prefix) :])
        if len(contents) < KEYS_PER_PAGE or not all(map(_UUID_KEY.fullmatch, (first, last))):
            return
        low, high = int(first[:3], 16), int(last[:3], 16) + 1
        left_pages = (_ID_SPACE - high) / (high - low)  # the page spanned [low, high)
        cuts = min(MAX_DAY_RANGES - 1, int(left_pages / PAGES_PER_RANGE))
        step = (_ID_SPACE - high) / (cuts + 1)
        points = sorted({f"{prefix}{high + round(step * i):03x}" for i in range(1, cuts + 1)})
        points = [p for p in points if p > prefix + last and r.rest.admits(p)]
        if not points:
            return
        end = r.bounds.end
        r.bounds, r.rest = replace(r.bounds, end=points[0]), replace(r.rest, end=points[0])
        for start, stop in zip(points, [*points[1:], end], strict=True):
            self.ranges.append(Range.of(KeyRange(prefix, start=start, end=stop)))


def _names(page: dict[str, Any]) -> list[str]:
    return [o["Key"] for o in page.get("Contents", [])] + [
        p["Prefix"] for p in page.get("CommonPrefixes", [])
    ]
