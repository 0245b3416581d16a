"""Brazilian business days and the breach-notice deadline (ANPD Resolution CD/ANPD 15/2024, art. 6).

The controller tells the ANPD and the data subjects of a security incident that may bring them relevant risk
or damage within **3 business days** of learning of it. A business day here is Monday to Friday that is not a
national holiday:

* fixed (Lei 662/1949, Lei 6.802/1980, Lei 14.759/2023): 1 January, 21 April (Tiradentes), 1 May, 7 September,
  12 October, 2 November, 15 November, 20 November (Consciência Negra, from 2024), 25 December;
* movable, from Easter Sunday (the Gregorian computus): Carnival Monday and Tuesday (Easter − 48 and − 47),
  Good Friday (Easter − 2), Corpus Christi (Easter + 60). Carnival and Corpus Christi are federal
  *pontos facultativos* rather than holidays by law, but public offices (the ANPD among them) close, so they do
  not count as business days: the deadline is never shorter than the authority's own count.

Counting follows the usual rule for deadlines (CPC art. 224): the day of detection is excluded, the deadline
ends at the close (24:00) of the third business day after it, in Brasília time (UTC−3: Brazil has kept no
daylight saving time since 2019, so a fixed offset needs no time-zone database). State and municipal holidays
are not counted (they depend on where the controller is established).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from functools import lru_cache

BRASILIA = timezone(timedelta(hours=-3), "BRT")
NOTICE_BUSINESS_DAYS = 3
AT_RISK_WITHIN = timedelta(hours=24)  # less time left than this: flagged "at_risk"

_FIXED = ((1, 1), (4, 21), (5, 1), (9, 7), (10, 12), (11, 2), (11, 15), (12, 25))
_BLACK_CONSCIOUSNESS_FROM = 2024  # Lei 14.759/2023 made 20 November a national holiday


def easter(year: int) -> date:
    """Easter Sunday of ``year`` (Gregorian; the anonymous algorithm of Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


@lru_cache(maxsize=64)
def national_holidays(year: int) -> dict[date, str]:
    """The national holidays (and the closed movable days) of ``year``, by date."""
    names = {
        (1, 1): "Confraternização Universal", (4, 21): "Tiradentes", (5, 1): "Dia do Trabalho",
        (9, 7): "Independência do Brasil", (10, 12): "Nossa Senhora Aparecida", (11, 2): "Finados",
        (11, 15): "Proclamação da República", (12, 25): "Natal",
    }
    days = {date(year, month, day): names[(month, day)] for month, day in _FIXED}
    if year >= _BLACK_CONSCIOUSNESS_FROM:
        days[date(year, 11, 20)] = "Dia Nacional de Zumbi e da Consciência Negra"
    sunday = easter(year)
    days[sunday - timedelta(days=48)] = "Carnaval (segunda-feira)"
    days[sunday - timedelta(days=47)] = "Carnaval (terça-feira)"
    days[sunday - timedelta(days=2)] = "Sexta-feira Santa"
    days[sunday + timedelta(days=60)] = "Corpus Christi"
    return days


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in national_holidays(day.year)


def add_business_days(start: date, count: int) -> date:
    """The ``count``-th business day after ``start`` (``start`` itself never counts)."""
    if count < 1:
        raise ValueError("count is at least 1")
    day, left = start, count
    while left:
        day += timedelta(days=1)
        if is_business_day(day):
            left -= 1
    return day


def business_days_between(start: date, end: date) -> int:
    """Business days in (``start``, ``end``]: how many are left from ``start`` until the one ending on ``end``."""
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        if is_business_day(day):
            count += 1
    return count


def local_date(instant: datetime) -> date:
    if instant.tzinfo is None:
        raise ValueError("an aware datetime is needed")
    return instant.astimezone(BRASILIA).date()


def notice_deadline(detected_at: datetime, business_days: int = NOTICE_BUSINESS_DAYS) -> datetime:
    """The instant (UTC) the notice is due: the close of the ``business_days``-th business day after the
    detection's day in Brasília."""
    last_day = add_business_days(local_date(detected_at), business_days)
    return datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=BRASILIA).astimezone(UTC)


def deadline_status(deadline_at: datetime, now: datetime, notified_at: datetime | None) -> dict:
    """How the deadline stands: ``status`` one of ``met`` (notified in time), ``missed`` (notified late),
    ``late`` (not notified, past due), ``at_risk`` (not notified, under :data:`AT_RISK_WITHIN` left) or
    ``on_time``; with the seconds and business days left (negative seconds: overdue)."""
    if notified_at is not None:
        status = "met" if notified_at <= deadline_at else "missed"
        return {"status": status, "due_at": deadline_at.isoformat(), "seconds_left": None,
                "business_days_left": None, "late": status == "missed", "at_risk": False}
    left = deadline_at - now
    if left <= timedelta(0):
        status = "late"
    elif left <= AT_RISK_WITHIN:
        status = "at_risk"
    else:
        status = "on_time"
    last_day = local_date(deadline_at - timedelta(microseconds=1))
    days_left = business_days_between(local_date(now), last_day) + (
        1 if is_business_day(local_date(now)) and local_date(now) <= last_day else 0) if left > timedelta(0) else 0
    return {"status": status, "due_at": deadline_at.isoformat(), "seconds_left": int(left.total_seconds()),
            "business_days_left": days_left, "late": status == "late", "at_risk": status == "at_risk"}
