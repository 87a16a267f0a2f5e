"""A call session's life, step by step: the trigger, the calling tasks, the call events, the
analysis and the writeback, and the calls to the workflow that tie them together."""
