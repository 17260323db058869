"""Alarms: conditions from rules, early warnings, staleness, rejection spikes and pluggable
sources; their lifecycle (open → acknowledged → resolved) and when to notify whom. Pure."""
