"""The conversation's transcript as the bridge saw it, bounded, for the session's record.

The analysis ElevenLabs sends after the call carries its own transcript; this one is what the
bridge relayed live (with the agent's corrections applied), kept for the call's story when the
analysis never comes.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from callflow.models import iso, utcnow


class Transcript:
    """The last ``limit`` turns: who said what, and when."""

    def __init__(self, limit: int) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=limit)

    def remember(self, role: str, text: object) -> None:
        """Add a turn (``user`` or ``agent``); empty or non-text turns are skipped."""
        if isinstance(text, str) and text:
            self._entries.append({"role": role, "text": text, "at": iso(utcnow())})

    def correct(self, original: object, corrected: object) -> None:
        """The agent was cut short: replace its last matching turn with what it really said."""
        if not isinstance(corrected, str):
            return
        for entry in reversed(self._entries):
            if entry["role"] == "agent" and entry["text"] == original:
                entry["text"] = corrected
                entry["corrected"] = True
                return
        self.remember("agent", corrected)

    def entries(self) -> list[dict[str, Any]]:
        """The turns kept, oldest first."""
        return list(self._entries)
