"""An independent reference implementation of belfry's cron rules.

Written from the documented grammar and daylight-saving rules (the crate docs
of belfry-schedule, its `cron` module docs, and "Schedules" in DESIGN.md), for
obviousness rather than speed: it walks the matching wall-clock times in order,
maps each one to instants with `zoneinfo`, and applies the fixed-time /
wildcard rules. `upcoming(expr, zone, start, count)` is the entry point;
`generate.py` uses it to write the fixture.
"""

from __future__ import annotations

import bisect
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

UTC = timezone.utc
HORIZON = datetime(2036, 1, 1, tzinfo=UTC)  # nothing at or past this is computed

MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


# ---------------------------------------------------------------- grammar


class CronError(ValueError):
    pass


def cron_weekday(d: date) -> int:
    """0 = Sunday ... 6 = Saturday."""
    return (d.weekday() + 1) % 7


def days_in_month(year: int, month: int) -> int:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return (nxt - date(year, month, 1)).days


def parse_value(text: str, lo: int, hi: int, names: list[str] | None, name_base: int) -> int:
    if text.isdigit():
        v = int(text)
    elif names and text.upper() in names:
        v = names.index(text.upper()) + name_base
    else:
        raise CronError(f"bad value {text!r}")
    if not lo <= v <= hi:
        raise CronError(f"{v} out of range {lo}-{hi}")
    return v


def parse_plain_part(part: str, lo: int, hi: int, star_hi: int, names, name_base, question_ok) -> set[int]:
    """`*`, `?`, `a`, `a-b`, `*/n`, `a-b/n`, `a/n` (a up to the field's maximum)."""
    step = 1
    base = part
    if "/" in part:
        base, step_text = part.split("/", 1)
        if not step_text.isdigit() or int(step_text) < 1:
            raise CronError(f"bad step in {part!r}")
        step = int(step_text)
    if base == "*" or (base == "?" and question_ok and step == 1):
        first, last = lo, star_hi
    elif "-" in base:
        a, b = base.split("-", 1)
        first = parse_value(a, lo, hi, names, name_base)
        last = parse_value(b, lo, hi, names, name_base)
        if first > last:
            raise CronError(f"reversed range {part!r}")
    else:
        first = parse_value(base, lo, hi, names, name_base)
        last = hi if "/" in part else first
    return set(range(first, last + 1, step))


def parse_time_field(text: str, lo: int, hi: int, names=None, name_base=0) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        values |= parse_plain_part(part, lo, hi, hi, names, name_base, False)
    return values


def nearest_weekday(year: int, month: int, n: int) -> int | None:
    last = days_in_month(year, month)
    if n > last:
        return None
    wd = cron_weekday(date(year, month, n))
    if wd == 6:  # Saturday: the Friday before, or Monday the 3rd when n is the 1st
        return n - 1 if n > 1 else n + 2
    if wd == 0:  # Sunday: the Monday after, or the Friday before when n ends the month
        return n + 1 if n < last else n - 2
    return n


def last_weekday(year: int, month: int) -> int:
    d = days_in_month(year, month)
    while cron_weekday(date(year, month, d)) in (0, 6):
        d -= 1
    return d


def parse_dom(text: str):
    """A predicate (year, month, day) -> bool for the day-of-month field."""
    plain: set[int] = set()
    specials = []
    for part in text.split(","):
        if part.upper() == "L":
            specials.append(lambda y, m, d: d == days_in_month(y, m))
        elif part.upper().startswith("L-"):
            k = int(part[2:])
            specials.append(lambda y, m, d, k=k: d == days_in_month(y, m) - k)
        elif part.upper() == "LW":
            specials.append(lambda y, m, d: d == last_weekday(y, m))
        elif part.upper().endswith("W"):
            n = parse_value(part[:-1], 1, 31, None, 0)
            specials.append(lambda y, m, d, n=n: d == nearest_weekday(y, m, n))
        else:
            plain |= parse_plain_part(part, 1, 31, 31, None, 0, True)
    return lambda y, m, d: d in plain or any(f(y, m, d) for f in specials)


def parse_dow(text: str):
    """A predicate (year, month, day) -> bool for the day-of-week field (0 and 7 are Sunday)."""
    plain: set[int] = set()
    specials = []
    for part in text.split(","):
        if "#" in part:
            a, b = part.split("#", 1)
            wd = parse_value(a, 0, 7, DAY_NAMES, 0) % 7
            n = int(b)
            if not 1 <= n <= 5:
                raise CronError(f"bad #{n}")
            specials.append(
                lambda y, m, d, wd=wd, n=n: cron_weekday(date(y, m, d)) == wd and (d - 1) // 7 + 1 == n
            )
        elif len(part) > 1 and part.upper().endswith("L"):
            wd = parse_value(part[:-1], 0, 7, DAY_NAMES, 0) % 7
            specials.append(
                lambda y, m, d, wd=wd: cron_weekday(date(y, m, d)) == wd and d + 7 > days_in_month(y, m)
            )
        else:
            plain |= {v % 7 for v in parse_plain_part(part, 0, 7, 6, DAY_NAMES, 0, True)}
    return lambda y, m, d: cron_weekday(date(y, m, d)) in plain or any(f(y, m, d) for f in specials)


class Cron:
    def __init__(self, expr: str):
        text = expr.strip()
        if text.startswith("@"):
            if text.lower() not in MACROS:
                raise CronError(f"unknown macro {text}")
            text = MACROS[text.lower()]
        fields = text.split()
        if len(fields) == 5:
            fields = ["0"] + fields
        if len(fields) != 6:
            raise CronError("expected 5 or 6 fields")
        sec, minute, hour, dom, month, dow = fields
        self.seconds = sorted(parse_time_field(sec, 0, 59))
        self.minutes = sorted(parse_time_field(minute, 0, 59))
        self.hours = sorted(parse_time_field(hour, 0, 23))
        self.months = parse_time_field(month, 1, 12, MONTH_NAMES, 1)
        self.dom = parse_dom(dom)
        self.dow = parse_dow(dow)
        self.dom_restricted = dom not in ("*", "?")
        self.dow_restricted = dow not in ("*", "?")
        self.fixed_time = not any("*" in f for f in (sec, minute, hour))

    def day_matches(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        y, m, n = d.year, d.month, d.day
        if self.dom_restricted and self.dow_restricted:
            return self.dom(y, m, n) or self.dow(y, m, n)
        if self.dom_restricted:
            return self.dom(y, m, n)
        if self.dow_restricted:
            return self.dow(y, m, n)
        return True

    def walls(self, first_day: date, skip_before):
        """Matching wall-clock times in order from `first_day`, leaving out whole
        days, hours and minutes whose last second satisfies `skip_before`."""
        d = first_day
        while d.year <= HORIZON.year + 1:
            if self.day_matches(d) and not skip_before(datetime(d.year, d.month, d.day, 23, 59, 59)):
                for h in self.hours:
                    if skip_before(datetime(d.year, d.month, d.day, h, 59, 59)):
                        continue
                    for mi in self.minutes:
                        if skip_before(datetime(d.year, d.month, d.day, h, mi, 59)):
                            continue
                        for s in self.seconds:
                            yield datetime(d.year, d.month, d.day, h, mi, s)
            d += timedelta(days=1)


# ---------------------------------------------------------------- zones


def local_wall(t: datetime, zone: ZoneInfo) -> datetime:
    return t.astimezone(zone).replace(tzinfo=None)


def instants_of(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """Every instant whose wall-clock time in `zone` is `wall`: none (gap), one, or two (overlap)."""
    out = set()
    for fold in (0, 1):
        t = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if local_wall(t, zone) == wall:
            out.add(t)
    return sorted(out)


def gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """For a wall time skipped by a gap: the first instant whose wall clock is past it."""
    a = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    b = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = int(min(a, b).timestamp()), int(max(a, b).timestamp())
    assert local_wall(datetime.fromtimestamp(lo, UTC), zone) < wall
    assert local_wall(datetime.fromtimestamp(hi, UTC), zone) > wall
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if local_wall(datetime.fromtimestamp(mid, UTC), zone) > wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


@lru_cache(maxsize=None)
def offset_bounds(zone_name: str) -> tuple[timedelta, timedelta]:
    zone = ZoneInfo(zone_name)
    t = datetime(2018, 1, 1, tzinfo=UTC)
    offsets = set()
    while t < datetime(2042, 1, 1, tzinfo=UTC):
        offsets.add(t.astimezone(zone).utcoffset())
        t += timedelta(hours=3)
    return min(offsets), max(offsets)


@lru_cache(maxsize=None)
def transitions(zone_name: str) -> list[datetime]:
    """Instants in 2020-2030 at which the zone's UTC offset changes (to the second)."""
    zone = ZoneInfo(zone_name)
    out = []
    t = datetime(2020, 1, 1, tzinfo=UTC)
    step = timedelta(hours=1)
    while t < datetime(2031, 1, 1, tzinfo=UTC):
        if t.astimezone(zone).utcoffset() != (t + step).astimezone(zone).utcoffset():
            lo, hi = int(t.timestamp()), int((t + step).timestamp())
            before = t.astimezone(zone).utcoffset()
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == before:
                    lo = mid
                else:
                    hi = mid
            out.append(datetime.fromtimestamp(hi, UTC))
        t += step
    return out


# ---------------------------------------------------------------- the rules


def upcoming(expr: str, zone_name: str, start: datetime, count: int) -> list[datetime]:
    """The first `count` fire instants strictly after `start` (fewer if the horizon comes first).

    Fixed-time (no `*` in second, minute, hour): a wall time that occurs once
    fires then; twice (overlap), at its first occurrence; never (gap), at the
    gap's end. Wildcard: every instant whose wall time matches.
    """
    cron = Cron(expr)
    zone = ZoneInfo(zone_name)
    min_off, max_off = offset_bounds(zone_name)

    def as_utc(wall: datetime) -> datetime:
        return wall.replace(tzinfo=UTC)

    # A wall time w maps to instants in [w - max_off, w - min_off].
    def skip_before(last_wall: datetime) -> bool:
        return as_utc(last_wall) - min_off <= start

    found: list[datetime] = []
    first_day = (start + min_off).date() - timedelta(days=1)
    for wall in cron.walls(first_day, skip_before):
        if len(found) >= count and as_utc(wall) - max_off > found[count - 1]:
            break
        if as_utc(wall) - max_off >= HORIZON:
            break
        instants = instants_of(wall, zone)
        if cron.fixed_time:
            candidates = instants[:1] if instants else [gap_end(wall, zone)]
        else:
            candidates = instants
        for t in candidates:
            if t > start and t not in found:
                bisect.insort(found, t)
    return [t for t in found[:count] if t < HORIZON]
