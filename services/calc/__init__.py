"""The calc service: readings → interval energy → carbon → rollups → indicators (docs/calc.md).

Pure modules (no I/O): ``plan`` (what each device measures), ``device_intervals`` (readings →
15-min / 1-min quantities), ``factors`` (which factor applies), ``balance`` (one site's inventory
per interval), ``green`` (green-power instruments against purchased electricity), ``kpis``
(indicators, targets, budgets, events), ``flows`` (energy–carbon–product graph of a period).
Shells: ``engine`` (one idempotent cycle against the database: connection, transactions, report)
with its steps ``reference``, ``changes``, ``site_cycle`` and ``steps/`` (intervals, carbon,
indicators); ``service`` (APScheduler loop, metrics, health).
"""
