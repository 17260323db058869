"""The API service: registry, live values, rejected readings and the green-power register over
HTTP, for dashboards, enterprises and regulators (docs/api.md).

Pure modules (no I/O): ``tokens`` (key format, hashing), ``access`` (roles and what each may do),
``ratelimit`` (token buckets on an injected clock); live values are computed by
``carbonflow.domain.indicators.live``. Shells: ``auth`` (key look-up with a short cache),
``middleware`` (metrics, authentication, rate limits, audit), ``deps`` (FastAPI dependencies),
``routers/`` (one per resource), ``app`` (``create_app(settings)``). ``reads`` (calc results
combined with the pure core on demand). SQL lives in ``carbonflow/storage/`` (one module per table
family).
"""
