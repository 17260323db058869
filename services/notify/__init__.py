"""The notify service: evaluates alarm sources, keeps alarms, tells people (docs/alarms.md)."""
