"""The operator library, installed as ``loopc.schedules`` (operators arrive with the operator-library issue)."""
