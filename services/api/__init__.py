"""The API service: registry, live values, rejected readings and the green-power register over
HTTP, for dashboards, enterprises and regulators (docs/api.md).

Pure modules (no I/O): ``tokens`` (key format, hashing), ``access`` (roles and what each may do),
``ratelimit`` (token buckets on an injected clock), ``live`` (site power and methane rates from
the latest readings). Shells: ``auth`` (key look-up with a short cache), ``middleware`` (metrics,
authentication, rate limits, audit), ``deps`` (FastAPI dependencies), ``routers/`` (one per
resource), ``app`` (``create_app(settings)``). SQL lives in ``carbonflow/storage/api_store.py``
and ``carbonflow/storage/access.py``.
"""
