"""Benchmarks: ``python -m bench`` runs every ``bench/<area>_<name>.py`` module's ``main()``."""
