"""What the caller says, and keys, while the agent is still connecting.

The media stream joins before the agent's conversation is open (the signed URL and the handshake
take a moment), and a person's first words ("Hello?") come then. They are kept, bounded, and
sent to the agent as soon as it is ready, so the agent hears the call from its start.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

TEXT_LIMIT = 16
"""Keypress messages kept before the agent is ready; later ones are dropped."""


class EarlyAudio:
    """A bounded buffer of caller frames (oldest dropped first) and of keypress messages."""

    def __init__(self, limit_bytes: int, text_limit: int = TEXT_LIMIT) -> None:
        self.limit_bytes = limit_bytes
        self.text_limit = text_limit
        self.dropped = 0
        """Frames dropped because the buffer was full (the agent took long to connect)."""
        self._frames: deque[bytes] = deque()
        self._bytes = 0
        self._texts: list[str] = []

    def keep(self, frame: bytes) -> None:
        """Buffer a caller frame, dropping the oldest beyond the limit."""
        self._frames.append(frame)
        self._bytes += len(frame)
        while self._bytes > self.limit_bytes:
            self._bytes -= len(self._frames.popleft())
            self.dropped += 1

    def keep_text(self, text: str) -> None:
        """Buffer a message for the agent (a keypress), up to :attr:`text_limit`."""
        if len(self._texts) < self.text_limit:
            self._texts.append(text)

    def frames(self) -> Iterator[bytes]:
        """The buffered frames, oldest first, each removed as it is handed out."""
        while self._frames:
            frame = self._frames.popleft()
            self._bytes -= len(frame)
            yield frame

    def texts(self) -> list[str]:
        """The buffered messages, removed."""
        texts, self._texts = self._texts, []
        return texts
