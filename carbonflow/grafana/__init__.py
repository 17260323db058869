"""Grafana dashboards as code: typed builders (``model``), one module per dashboard, the
writer of ``dashboards/json`` (``build``), a model checker (``validate``), Grafana's SQL macro
expansion (``macros``) and the HTTP upload (``push``). See docs/dashboards.md."""
