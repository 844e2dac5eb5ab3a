#!/usr/bin/env python3
"""Writes fixture.json: cron cases for belfry's engine (crates/schedule).

Each case is an expression, a zone, a start instant and the next 5-10 fire
instants computed by `cron_reference.py`, an independent implementation of the
documented rules; `crates/schedule/tests/reference.rs` replays every case.

Run: python3 tests/schedule-reference/generate.py   (stdlib only, Python >= 3.9)

The output is deterministic for a given seed and tz database; the script
refuses to run against a tz database other than TZDATA (the version chrono-tz
bundles) so that both sides agree on the zone rules.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.dont_write_bytecode = True  # no __pycache__ next to the fixture
from cron_reference import (  # noqa: E402
    DAY_NAMES,
    MACROS,
    MONTH_NAMES,
    UTC,
    Cron,
    cron_weekday,
    local_wall,
    parse_time_field,
    transitions,
    upcoming,
)

TZDATA = "2025b"  # chrono-tz 0.10.4 bundles tzdata 2025b
SEED = 20250330

# Zones with daylight saving in 2020-2030 (cases start within a day before a transition).
DST_ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute shift
    "Pacific/Chatham",  # +12:45 / +13:45
    "Europe/London",
    "America/Santiago",  # shifts at local midnight: the gap and overlap cross a day boundary
]
# Zones without daylight saving in 2020-2030 (Kathmandu: +05:45; Sao Paulo: none since 2019).
PLAIN_ZONES = ["Asia/Kathmandu", "America/Sao_Paulo", "UTC"]


# ---------------------------------------------------------------- case generation


def rfc3339(t: datetime) -> str:
    if t.microsecond:
        return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Gen:
    def __init__(self, rng: random.Random):
        self.r = rng

    def maybe_lower(self, name: str) -> str:
        return name.lower() if self.r.random() < 0.2 else name

    def time_field(self, hi: int, wildcard: bool, must: list[int] | None = None) -> str:
        """A second/minute/hour field; `wildcard` puts a `*` in it; it includes one of `must` if given."""
        while True:
            text = self.time_field_once(hi, wildcard, must)
            if not must or set(must) & parse_time_field(text, 0, hi):
                return text

    def time_field_once(self, hi: int, wildcard: bool, must: list[int] | None) -> str:
        r = self.r
        if wildcard:
            if must:  # near a transition: few enough fires that both passes show up in 5-10
                return r.choice(["*", "*/10", "*/15", "*/20", "*/20", "*/30", "*/30"])
            return r.choice(["*", f"*/{r.choice([2, 3, 5, 7, 10, 15, 20, 30])}"])
        must = must or []
        shape = r.choice(["single", "list", "range", "range_step", "from_step"])
        if shape == "single":
            return str(must[0] if must else r.randint(0, hi))
        if shape == "list":
            values = set(must) | {r.randint(0, hi) for _ in range(r.randint(1, 3))}
            return ",".join(str(v) for v in sorted(values))
        lo_v = min(must) if must else r.randint(0, hi)
        hi_v = max(must) if must else lo_v
        lo_v = max(0, lo_v - r.randint(0, 3))
        hi_v = min(hi, hi_v + r.randint(0, 5))
        if shape == "range":
            return f"{lo_v}-{hi_v}"
        if shape == "range_step":
            return f"{lo_v}-{hi_v}/{r.randint(1, 4)}"
        return f"{lo_v}/{r.choice([1, 2, 5, 15, 30])}"

    def dom(self) -> str:
        r = self.r
        return r.choice(
            [
                "*",
                "*",
                "?",
                str(r.randint(1, 28)),
                f"{r.randint(1, 10)}-{r.randint(11, 31)}",
                f"{r.randint(1, 9)},{r.randint(10, 20)},{r.randint(21, 31)}",
                f"*/{r.randint(2, 10)}",
                f"{r.randint(1, 10)}/{r.randint(2, 9)}",
                f"{r.randint(1, 10)}-{r.randint(15, 31)}/{r.randint(2, 5)}",
                "L",
                f"L-{r.randint(1, 5)}",
                "LW",
                f"{r.randint(1, 31)}W",
                f"{r.randint(1, 14)},L",
                f"{r.randint(1, 28)}W,L",
            ]
        )

    def month(self) -> str:
        r = self.r
        a = r.randint(1, 12)
        b = r.randint(a, 12)
        return r.choice(
            [
                "*",
                "*",
                "*",
                str(a),
                self.maybe_lower(MONTH_NAMES[a - 1]),
                f"{a}-{b}",
                f"{self.maybe_lower(MONTH_NAMES[a - 1])}-{self.maybe_lower(MONTH_NAMES[b - 1])}",
                f"*/{r.randint(2, 4)}",
                f"{r.randint(1, 3)}/{r.randint(2, 4)}",
                ",".join(sorted({MONTH_NAMES[r.randint(0, 11)] for _ in range(3)}, key=MONTH_NAMES.index)),
            ]
        )

    def dow(self) -> str:
        r = self.r
        a = r.randint(0, 6)
        b = r.randint(a, 7)
        day = self.maybe_lower(DAY_NAMES[a])
        return r.choice(
            [
                "*",
                "*",
                "?",
                str(a),
                day,
                f"{a}-{b}",
                "MON-FRI",
                "mon-fri",
                "SAT,SUN",
                "1-5",
                "7",
                "5-7",
                f"{self.maybe_lower(DAY_NAMES[r.randint(0, 2)])}-{self.maybe_lower(DAY_NAMES[r.randint(3, 6)])}",
                f"*/{r.randint(2, 3)}",
                f"1-5/2",
                f"{r.randint(0, 6)}L",
                f"{day}#{r.randint(1, 4)}",
                f"{a}#{r.randint(1, 5)}",
                "MON,WED,FRI",
            ]
        )

    def expression(self, target: tuple[list[int], list[int]] | None = None) -> str:
        """A random expression; `target` = (hours, minutes) it should hit (around a transition)."""
        r = self.r
        if target is None and r.random() < 0.05:
            return r.choice(list(MACROS))
        wildcard = r.random() < 0.45
        hours, minutes = target if target else (None, None)
        six = r.random() < 0.4
        # Where the `*` goes in a wildcard expression.
        star = r.choice(["second", "minute", "minute", "hour", "hour"] if six else ["minute", "hour"]) if wildcard else None
        if six and target and star != "second":
            sec = r.choice(["0", "0", "0,30", "10", "0-30/15"])  # sparse, so 5-10 fires reach the transition
        else:
            sec = self.time_field(59, star == "second", [0] if target or r.random() < 0.5 else None) if six else None
        minute = self.time_field(59, star == "minute", minutes and [r.choice(minutes)])
        hour = self.time_field(23, star == "hour", hours)
        if target:
            # Near a transition the interesting days are the transition's: keep them mostly open.
            dom, month, dow = (
                ("*", "*", "*") if r.random() < 0.8 else (r.choice(["*", "?"]), "*", self.dow())
            )
        else:
            dom, month, dow = self.dom(), self.month(), self.dow()
            if dom == "?" and dow == "?":
                dow = "*"
        fields = ([sec] if six else []) + [minute, hour, dom, month, dow]
        return " ".join(fields)


CURATED = [
    "0 30 2 * * *",
    "30 2 * * *",
    "0 0,30 2,3 * * *",
    "*/15 * * * *",
    "0 * 2 * * *",
    "15 * * * *",
    "*/20 1 * * *",
    "45 1 * * *",
    "0 3 * * *",
    "*/30 * * * * *",
    "0 0 0 * * *",
    "0 30 0 * * SUN",
    "0 30 23 * * SAT",
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
    "0 12 L * ?",
    "0 9 LW * ?",
    "0 9 15W * ?",
    "0 9 1W * ?",
    "0 9 31W * ?",
    "0 8 ? * 5L",
    "0 8 ? * MON#2",
    "0 8 ? * 0#5",
    "0 0 13 * FRI",
    "0 0 1,15 * MON",
    "0 0 */2 * 1-5",
    "0 0 L-2 * *",
    "30 4 1-7 * SUN",
    "0 0 29 2 *",
    "0 0 29 FEB ?",
    "0 30 9-17/2 * * MON-FRI",
    "10,20,40 15 6 * JAN-MAR,OCT ?",
    "0 0 12 ? jun-aug sat,sun",
    "59 59 23 L DEC ?",
    "0 */7 * * *",
    "5/20 * * * * *",
    "0 0 0 1 */3 *",
    "@Daily",
    "  0   12 * *\tMON-FRI ",
]


def classify(expr: str, zone_name: str, transition: datetime, expected: list[datetime]) -> str:
    """Which daylight-saving rule a near-transition case exercises, for the summary."""
    zone = ZoneInfo(zone_name)
    before = (transition - timedelta(seconds=1)).astimezone(zone).utcoffset()
    after = transition.astimezone(zone).utcoffset()
    fixed = Cron(expr).fixed_time
    if after > before:  # spring forward
        if fixed and transition in expected:
            return "fixed-time fire at a gap's end"
        if not fixed and any(t - transition < timedelta(hours=1) for t in expected if t >= transition):
            return "wildcard fire right after a gap"
    else:
        second_pass = [t for t in expected if transition <= t < transition + (before - after)]
        first_pass = [t for t in expected if transition - (before - after) <= t < transition]
        if not fixed and second_pass:
            return "wildcard fire in an overlap's second pass"
        if fixed and first_pass:
            return "fixed-time fire in an overlap's first pass"
    if any(abs(t - transition) <= timedelta(hours=3) for t in expected):
        return "other fire within 3h of a transition"
    return "no fire within 3h of the transition"


def make_cases(seed: int, general: int, near: int) -> tuple[list[dict], Counter[str]]:
    rng = random.Random(seed)
    gen = Gen(rng)
    cases: list[dict] = []
    summary: Counter[str] = Counter()
    seen: set[tuple[str, str, str]] = set()

    def add(expr: str, zone: str, start: datetime, count: int, transition: datetime | None) -> bool:
        key = (expr, zone, rfc3339(start))
        if key in seen:
            return False
        expected = upcoming(expr, zone, start, count)
        if len(expected) < min(count, 5):
            return False  # matches too rarely for the horizon: draw another
        seen.add(key)
        near_dst = transition is not None and transition - timedelta(days=1) < start < transition
        if near_dst:
            summary[classify(expr, zone, transition, expected)] += 1
        if rng.random() < 0.15:
            # Again from exactly a fire instant (strictly after excludes it), and from 1 ms before it.
            k = rng.randrange(len(expected))
            for again in (expected[k], expected[k] - timedelta(milliseconds=1)):
                add(expr, zone, again, rng.randint(5, 10), transition)
        cases.append(
            {
                "expr": expr,
                "zone": zone,
                "start": rfc3339(start),
                "near_dst": near_dst,
                "expected": [rfc3339(t) for t in expected],
            }
        )
        return True

    def random_start(lo: datetime, hi: datetime) -> datetime:
        t = lo + timedelta(seconds=rng.randrange(int((hi - lo).total_seconds())))
        if rng.random() < 0.1:
            t += timedelta(milliseconds=rng.randint(1, 999))
        return t

    def near_start(zone: str) -> tuple[datetime, datetime]:
        transition = rng.choice(transitions(zone))
        z = ZoneInfo(zone)
        shift = abs(transition.astimezone(z).utcoffset() - (transition - timedelta(seconds=1)).astimezone(z).utcoffset())
        # Anywhere in the day before, within hours of it, or right before it
        # (inside the first pass of an overlap, or just before a gap).
        within = rng.choice([86399, 86399, 3 * 3600, int(shift.total_seconds()) + 600])
        start = transition - timedelta(seconds=rng.randint(1, within))
        if rng.random() < 0.1:
            start -= timedelta(milliseconds=rng.randint(1, 999))
            start = max(start, transition - timedelta(days=1) + timedelta(milliseconds=1))
        return transition, start

    def target_of(zone: str, transition: datetime) -> tuple[list[int], list[int]]:
        """Hours and minutes of the wall times a transition skips or repeats."""
        z = ZoneInfo(zone)
        before = local_wall(transition - timedelta(seconds=1), z) + timedelta(seconds=1)
        after = local_wall(transition, z)
        lo, hi = min(before, after), max(before, after)
        walls = [lo + timedelta(minutes=k) for k in range(int((hi - lo).total_seconds() // 60))]
        hours = sorted({w.hour for w in walls})
        minutes = sorted({w.minute for w in walls})
        # Also the edges: the last minute before and the first minute after.
        edge = [(lo - timedelta(minutes=1)).minute, hi.minute]
        return hours, minutes + edge

    # Curated expressions: each in a few zones, near a transition and anywhere.
    for expr in CURATED:
        for zone in rng.sample(DST_ZONES, 2):
            transition, start = near_start(zone)
            add(expr, zone, start, rng.randint(5, 10), transition)
        zone = rng.choice(DST_ZONES + PLAIN_ZONES)
        add(expr, zone, random_start(datetime(2020, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)),
            rng.randint(5, 10), None)

    # The edges of every kind of transition in every zone: the last wall time
    # before the gap or overlap, its first and last, and the first after it; as a
    # fixed time, with the transition's date in a day field (the transition in
    # America/Santiago is at midnight, so its gap and overlap change the date),
    # and hourly (wildcard).
    for zone in DST_ZONES:
        z = ZoneInfo(zone)
        for transition in rng.sample(transitions(zone), 4):
            first = local_wall(transition - timedelta(seconds=1), z) + timedelta(seconds=1)
            after = local_wall(transition, z)
            lo, hi = min(first, after), max(first, after)
            for w in (lo - timedelta(seconds=1), lo, hi - timedelta(seconds=1), hi):
                day = DAY_NAMES[cron_weekday(w.date())]
                for expr in (
                    f"{w.second} {w.minute} {w.hour} * * *",
                    f"{w.second} {w.minute} {w.hour} ? * {day}",
                    f"{w.second} {w.minute} {w.hour} {w.day} * ?",
                    f"{w.second} {w.minute} * * * *",
                ):
                    start = transition - timedelta(seconds=rng.randint(1, 3 * 3600))
                    add(expr, zone, start, rng.randint(5, 10), transition)
                    # And from inside the hour after it (an overlap's second pass).
                    start = transition + timedelta(seconds=rng.randint(0, 3600))
                    add(expr, zone, start, rng.randint(5, 10), None)

    while sum(c["near_dst"] for c in cases) < near:
        zone = rng.choice(DST_ZONES)
        transition, start = near_start(zone)
        target = target_of(zone, transition) if rng.random() < 0.85 else None
        add(gen.expression(target), zone, start, rng.randint(5, 10), transition)

    while sum(not c["near_dst"] for c in cases) < general:
        zone = rng.choice(DST_ZONES + PLAIN_ZONES)
        start = random_start(datetime(2020, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC))
        add(gen.expression(), zone, start, rng.randint(5, 10), None)

    return cases, summary


def tzdata_version() -> str:
    for base in ("/usr/share/zoneinfo", "/usr/lib/zoneinfo"):
        try:
            with open(f"{base}/tzdata.zi", encoding="ascii") as f:
                first = f.readline().split()
                if first[:2] == ["#", "version"]:
                    return first[2]
        except OSError:
            pass
    try:
        import tzdata  # type: ignore

        return tzdata.IANA_VERSION
    except ImportError:
        return "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--general", type=int, default=250, help="cases starting anywhere in 2020-2030")
    p.add_argument("--near", type=int, default=700, help="cases starting within a day before a transition")
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("fixture.json"))
    p.add_argument("--any-tzdata", action="store_true", help="run against another tz database anyway")
    args = p.parse_args()

    version = tzdata_version()
    if version != TZDATA and not args.any_tzdata:
        sys.exit(f"tz database is {version}, the fixture is made with {TZDATA} (chrono-tz's); see --any-tzdata")

    cases, summary = make_cases(args.seed, args.general, args.near)
    lines = ",\n".join("  " + json.dumps(c, separators=(", ", ": ")) for c in cases)
    header = json.dumps({"tzdata": TZDATA, "seed": args.seed, "generator": "tests/schedule-reference/generate.py"})
    args.out.write_text(header[:-1] + ', "cases": [\n' + lines + "\n]}\n", encoding="utf-8")
    near = sum(c["near_dst"] for c in cases)
    print(f"{len(cases)} cases ({near} near a transition) -> {args.out}")
    for what, n in sorted(summary.items()):
        print(f"  {n:4} {what}")


if __name__ == "__main__":
    main()
