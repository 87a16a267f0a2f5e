"""Callbacks: the person asked to be called back at a time; the call is placed again then."""
