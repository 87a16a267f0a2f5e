"""What Infobip's media stream really sent: frame sizes, their cadence, the text events.

Infobip's media WebSocket has no official description; the bridge relies on 20 ms frames of
16-bit PCM at the configured rate (see README, "Provider behaviour we rely on"). These counters
let ``callflow doctor --test-call`` say whether that held on a real call. They cost one clock
read already taken by the caller, a dict increment and a bounded list append per frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_SIZES = 8
"""Distinct frame sizes counted one by one; any further size is counted under ``other``."""
MAX_INTERVALS = 500
"""Inter-arrival gaps kept (10 s of 20 ms frames): enough for a median and a 95th percentile."""
MAX_TEXT_EVENTS = 8
"""Distinct names of text events (other than the connected frame) kept."""


@dataclass
class FrameStats:
    """Counters of the frames one media stream sent us."""

    sizes: dict[int, int] = field(default_factory=dict)
    other_sizes: int = 0
    frames: int = 0
    intervals_ms: list[float] = field(default_factory=list)
    text_events: dict[str, int] = field(default_factory=dict)
    _last: float | None = None

    def audio(self, size: int, now: float) -> None:
        """One binary frame of ``size`` bytes arrived at ``now`` (monotonic seconds)."""
        self.frames += 1
        sizes = self.sizes
        if size in sizes:
            sizes[size] += 1
        elif len(sizes) < MAX_SIZES:
            sizes[size] = 1
        else:
            self.other_sizes += 1
        last = self._last
        self._last = now
        if last is not None and len(self.intervals_ms) < MAX_INTERVALS:
            self.intervals_ms.append((now - last) * 1000.0)

    def text(self, event: str) -> None:
        """A text frame naming ``event`` arrived (``?`` for one without an event name)."""
        name = event[:64] if event else "?"
        if name in self.text_events:
            self.text_events[name] += 1
        elif len(self.text_events) < MAX_TEXT_EVENTS:
            self.text_events[name] = 1

    def summary(self) -> dict[str, object]:
        """Plain values for the session record: sizes by count, the gaps' median, p95, max."""
        gaps = sorted(self.intervals_ms)
        return {
            "frames": self.frames,
            "sizes": {str(size): count for size, count in sorted(self.sizes.items())},
            "other_sizes": self.other_sizes,
            "interval_ms": {
                "p50": _percentile(gaps, 0.5),
                "p95": _percentile(gaps, 0.95),
                "max": round(gaps[-1], 1) if gaps else None,
                "samples": len(gaps),
            },
            "text_events": dict(self.text_events),
        }


def _percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return round(ordered[index], 1)
