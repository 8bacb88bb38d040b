"""Differential fuzzing of random legal schedules (see tests/fuzz/README.md)."""
