"""The layout pictures: values in the panel's unit, every panel drawn, and the label that
says what the picture is (a rendering from query results, not a Grafana screenshot)."""

from __future__ import annotations

from carbonflow.grafana import mine, platform
from carbonflow.grafana.render import BANNER, BANNER_PROMQL, dashboard_html, format_value


def test_values_are_shown_in_the_panel_unit() -> None:
    assert format_value(0.8239, "percentunit") == "82.4 %"  # 0.8239 × 100 = 82.39 → 82.4
    assert format_value(1766.2, "suffix: t/h") == "1,766 t/h"
    assert format_value(16.771, "suffix: kWh/t") == "16.77 kWh/t"
    assert format_value(-17949.0, "kwatt") == "-17,949 kW"
    assert format_value(None, "kwatt") == "–"


def test_every_panel_is_drawn_with_its_title_unit_and_data() -> None:
    board = mine.dashboard()
    results = {
        "variables": {"site": ["shanxi-jinzhong-mine"]},
        "Hoisting (raw coal)": {"columns": ["hoisting"], "rows": [[1766.2]]},
        "Methane utilisation rate": {
            "columns": ["time", "utilisation"],
            "rows": [[1795240800, 0.44], [1795241700, 0.43]],
        },
    }
    page = dashboard_html(board, results)
    assert BANNER in page
    for panel in board.panels():
        assert f">{panel.title}<" in page.replace("&amp;", "&")
    assert "1,766 t/h" in page and "<polyline" in page
    assert page.count("no data") == len(board.panels()) - 2


def test_a_prometheus_dashboard_says_it_has_no_data_here() -> None:
    page = dashboard_html(platform.dashboard(), {})
    assert BANNER_PROMQL in page and BANNER not in page
    assert "carbonflow_ingest_rejected_total" in page
