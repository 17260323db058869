"""Request and response schemas of the ledger routes (docs/api.md, Ledgers).

The ledger document itself is described field by field in ``carbonflow/domain/ledger/document.py``;
every number in it carries its unit in its name (``tco2e``, ``energy_tce``, ``applied_mwh``) or in a
``unit`` field of its row (activity quantities, factor values, indicator values).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

LedgerFormat = Literal["json", "csv", "xlsx", "pdf"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class RevisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=3,
        max_length=2000,
        description="why the month is revised (a corrected reading, a new factor version …)",
        examples=["meter grid-line-1 re-read after repair: late readings of 2 March"],
    )


class LedgerChange(_Out):
    line: str = Field(description="section/row/field, e.g. totals/location/total_tco2e")
    section: str
    before: float | None = Field(description="value in the earlier revision (null: no line)")
    after: float | None = Field(description="value now (null: the line is gone)")
    delta: float | None = Field(description="after − before, in `unit`")
    unit: str


class LedgerDocument(_Out):
    """A ledger (module doc of ``carbonflow/domain/ledger/document.py``)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    schema_: str = Field(alias="schema", description="document schema, carbonflow.ledger/1")
    header: dict[str, Any]
    activity: list[dict[str, Any]]
    devices: list[dict[str, Any]] = Field(
        default_factory=list,
        description="the device metrics behind each activity line: serials, opening and closing "
        "register readings, multiplier, quantity, quality shares (empty in revisions stored "
        "before the section existed)",
    )
    factors: list[dict[str, Any]]
    emissions: list[dict[str, Any]]
    totals: list[dict[str, Any]]
    energy_totals: list[dict[str, Any]] = Field(
        default_factory=list,
        description="the two comprehensive energy totals [tce], labelled in Chinese and English: "
        "with and without the coal-mine methane utilised on site, and the indicators built on "
        "each (empty in revisions stored before the section existed)",
    )
    green_power: list[dict[str, Any]]
    green_claims: list[dict[str, Any]] = Field(
        default_factory=list,
        description="the green-certificate register's claims applied to the month: claim, "
        "batch, holder, evidence type, serial range, MWh, production month (an organisation's "
        "own; a site ledger all, by holder)",
    )
    production: list[dict[str, Any]]
    indicators: list[dict[str, Any]]
    quality: dict[str, Any]
    changes: list[LedgerChange]
    content_sha256: str = Field(description="SHA-256 of the accounting content (hex)")


class RevisionOut(_Out):
    revision: int = Field(ge=1)
    content_sha256: str
    document_sha256: str = Field(description="SHA-256 of the stored JSON bytes (the ETag)")
    reason: str | None = Field(description="null for revision 1 (the close)")
    created_by: str = Field(description="id of the key that closed or revised the month")
    created_at: datetime
    change_count: int = Field(ge=0, description="lines changed against the previous revision")
    href: str


class RevisionList(_Out):
    items: list[RevisionOut]


class LedgerMonthOut(_Out):
    site_id: str
    org_id: str | None = Field(description="null: the site's own ledger")
    month: str = Field(description="site-local calendar month, YYYY-MM")
    closed: bool
    latest_revision: RevisionOut | None
    differs: bool | None = Field(
        description="the current computation differs from the latest revision (null: open)"
    )
    current_content_sha256: str
    changes: list[LedgerChange] = Field(
        description="lines of the current computation that differ from the latest revision"
    )
    ledger: LedgerDocument = Field(
        description="the latest revision when closed, else the current computation (draft)"
    )
