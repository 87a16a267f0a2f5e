"""Phone numbers in logs and views: masked, so a log line never carries a dialable number.

Kept apart from :mod:`callflow.phone` (which parses numbers with ``phonenumbers``) because every
part masks numbers and only the lifecycle parses them: the bridge masks without installing the
number database.
"""

from __future__ import annotations


def mask(number: str) -> str:
    """Keep the last three digits: enough to tell calls apart in a log, not to dial."""
    digits = [c for c in number if c.isdigit()]
    if len(digits) <= 3:
        return "*" * len(digits)
    prefix = "+" if number.strip().startswith("+") else ""
    return prefix + "*" * (len(digits) - 3) + "".join(digits[-3:])
