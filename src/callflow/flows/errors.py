"""The flows' errors, in a module of their own: the API registers a handler for them at import
without importing the loader (and with it the settings), which health never needs."""

from __future__ import annotations


class FlowConfigError(ValueError):
    """The flow files are unusable; each of ``problems`` is ``file: line N: what is wrong``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid flow configuration:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


class UnknownFlow(LookupError):
    """No flow has this name."""
