"""Phone numbers and calling hours.

CRM phone fields are free text. A number is accepted only when ``phonenumbers`` parses it against
the default region *and* says it is a valid number; anything else is refused with a reason that is
written back to the record. Calling hours are evaluated in the person's time zone: a record field
when the org keeps one, else the zone of the number's region when it has exactly one, else the
configured default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callflow.masking import mask

__all__ = ["CallingHours", "InvalidPhone", "Phone", "mask", "normalise", "timezone_for"]

# ``phonenumbers`` loads its metadata when imported: it is imported where numbers are parsed, so
# the API (which only masks numbers) does not pay for it on a cold start.


class InvalidPhone(ValueError):
    """The number cannot be dialled; ``str(error)`` says why, for the CRM note."""


@dataclass(frozen=True)
class Phone:
    """A valid number in E.164 with its region code (``None`` when phonenumbers has none)."""

    e164: str
    region: str | None

    @property
    def infobip(self) -> str:
        """Infobip's ``phoneNumber`` is the international number without the plus."""
        return self.e164.lstrip("+")


def normalise(raw: str, default_region: str) -> Phone:
    """``raw`` as a valid number in E.164, parsed against ``default_region``.

    Raises :class:`InvalidPhone` when it is empty, does not parse or is not a valid number; the
    message masks the number.
    """
    import phonenumbers

    text = (raw or "").strip()
    if not text:
        raise InvalidPhone("the record has no phone number")
    try:
        number = phonenumbers.parse(text, default_region.upper())
    except phonenumbers.NumberParseException as error:
        raise InvalidPhone(f"'{mask(text)}' is not a phone number ({error._msg})") from error
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"'{mask(text)}' is not a valid number for its region")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Phone(e164=e164, region=phonenumbers.region_code_for_number(number))


def timezone_for(phone: Phone, record_zone: str | None, default_zone: str) -> str:
    """The person's IANA time zone: ``record_zone`` when valid, else the number's zone when it has
    exactly one, else ``default_zone``."""
    import phonenumbers
    from phonenumbers import timezone as phone_timezone

    for candidate in (record_zone,):
        if candidate and _valid_zone(candidate):
            return candidate
    zones = phone_timezone.time_zones_for_number(phonenumbers.parse(phone.e164))
    real = [z for z in zones if _valid_zone(z)]
    if len(real) == 1:
        return real[0]
    return default_zone


def _valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class CallingHours:
    """The daily window (local time, ``start`` inclusive, ``end`` exclusive) and the weekdays on
    which calls are placed."""

    start: time
    end: time
    weekdays: frozenset[int]

    @classmethod
    def parse(cls, start: str, end: str, weekdays: frozenset[int]) -> CallingHours:
        """The hours from ``HH:MM`` strings (``24:00`` means the end of the day)."""
        return cls(_hhmm(start), _hhmm(end), weekdays)

    def allows(self, moment: datetime, zone: str) -> bool:
        """Whether ``moment``, seen in ``zone``, falls on a calling day inside the window."""
        local = moment.astimezone(ZoneInfo(zone))
        return local.weekday() in self.weekdays and self.start <= local.time() < self.end

    def next_opening(self, moment: datetime, zone: str) -> datetime:
        """``moment`` itself when inside hours, else the next start of a calling window."""
        if self.allows(moment, zone):
            return moment
        if not self.weekdays:
            raise ValueError("no calling days are configured")
        tz = ZoneInfo(zone)
        local = moment.astimezone(tz)
        for offset in range(8):
            day = (local + timedelta(days=offset)).date()
            opening = datetime.combine(day, self.start, tzinfo=tz)
            if opening > local and day.weekday() in self.weekdays:
                return opening.astimezone(moment.tzinfo)
        raise AssertionError("unreachable: a week always has an allowed day")


def _hhmm(value: str) -> time:
    hours, minutes = (int(part) for part in value.split(":"))
    return time.max if hours == 24 else time(hours, minutes)
