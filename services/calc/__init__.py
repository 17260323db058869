"""The calc service: readings → interval energy → carbon → rollups → indicators (docs/calc.md).

A shell: every rule it applies is the pure core's (``carbonflow.domain``: site plans, device
intervals, factors, the interval inventory, the green pool, flows, indicators) and every
statement it runs is storage's (``carbonflow.storage``). Here: ``engine`` (one idempotent cycle
against the database: connection, transactions, report) with its steps ``reference``, ``changes``,
``site_cycle`` and ``steps/`` (intervals, carbon, indicators); ``service`` (APScheduler loop,
metrics, health).
"""
