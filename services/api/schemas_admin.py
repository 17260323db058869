"""Schemas of the administration routes: API keys (site documents and imports further down)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


RoleName = Literal["admin", "operator", "enterprise", "regulator"]


class KeyIn(BaseModel):
    """A new API key: its role and scope (sites, organisation), label, limit and expiry."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "role": "operator",
                    "site_ids": ["shanxi-jinzhong-mine"],
                    "label": "control room",
                    "expires_at": "2027-12-31T16:00:00Z",
                }
            ]
        },
    )
    role: RoleName
    site_ids: list[str] = Field(
        default_factory=list, max_length=1000, description="sites it may see (none for admin)"
    )
    org_id: str | None = Field(default=None, description="an enterprise key's organisation")
    label: str = Field(min_length=1, max_length=200, description="who or what holds the key")
    requests_per_minute: int | None = Field(
        default=None, ge=1, le=1_000_000, description="own rate limit [1/min]; null: default"
    )
    expires_at: datetime | None = Field(default=None, description="null: never expires")


class KeyRotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires_at: datetime | None = Field(
        default=None, description="a new expiry; null keeps the current one"
    )


class KeyOut(_Out):
    key_id: str = Field(description="public id; the token is cf_<key_id>_<secret>")
    role: RoleName
    label: str
    site_ids: list[str] | None = Field(description="null: every site (admin)")
    org_id: str | None
    requests_per_minute: int | None = Field(description="own rate limit [1/min]; null: default")
    state: Literal["active", "expired", "revoked"]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="last successful authentication")


class KeyPage(_Out):
    items: list[KeyOut]


class KeyCreatedOut(_Out):
    key: KeyOut
    token: str = Field(description="shown once, never stored: only its SHA-256 is kept")


# --------------------------------------------------------------------------------------------
# Site documents and their revisions
# --------------------------------------------------------------------------------------------


class ChangeOut(_Out):
    path: str = Field(description="what changed, e.g. devices[grid-line-1].multiplier")
    op: Literal["added", "removed", "changed"]
    before: Any = Field(description="null when added")
    after: Any = Field(description="null when removed")


class DocumentIn(BaseModel):
    """A whole site document (the site file's content as JSON) and why it changes."""

    model_config = ConfigDict(extra="forbid")
    document: dict[str, Any] = Field(description="the site document, as in a site file")
    reason: str = Field(min_length=3, max_length=2000, description="why (kept in the revision)")


class DocumentCheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document: dict[str, Any] = Field(description="the proposed site document")


class DocumentProblemOut(_Out):
    path: str = Field(description="where, e.g. devices[7].carrier; empty for the document")
    message: str


class DocumentCheckOut(_Out):
    valid: bool
    errors: list[DocumentProblemOut] = Field(description="every problem; empty when valid")
    changes: list[ChangeOut] = Field(
        description="what applying it would change against the current revision (valid only)"
    )


class DeviceIn(BaseModel):
    """One device as in a site file's ``devices`` list, and why."""

    model_config = ConfigDict(extra="forbid")
    device: dict[str, Any] = Field(description="the device, as in a site file")
    reason: str = Field(min_length=3, max_length=2000)


class RetireIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=2000)


class RevisionSummaryOut(_Out):
    site_id: str
    revision: int
    document_sha256: str
    author: str = Field(description="the key (id and label) or command that wrote it")
    reason: str
    source: Literal["file", "api", "demo", "migration"]
    created_at: datetime
    changes: int = Field(description="number of changes against the revision before")


class RevisionOut(RevisionSummaryOut):
    diff: list[ChangeOut]
    document: dict[str, Any]


class RevisionPage(_Out):
    items: list[RevisionSummaryOut]


# --------------------------------------------------------------------------------------------
# Reading imports (数据补录)
# --------------------------------------------------------------------------------------------


class ImportProblemOut(_Out):
    line: int = Field(description="1-based line (row) of the file; the header is line 1")
    reason: str = Field(description="the MQTT contract's rejection reason")
    detail: str
    device_id: str | None
    metric: str | None


class ClosedLedgerOut(_Out):
    org_id: str = Field(description="'' for the site's own ledger")
    month: str = Field(description="YYYY-MM, site-local")
    revision: int = Field(description="its newest closed revision, which will differ")


class ImportOut(_Out):
    import_id: int | None = Field(description="null for a dry run")
    site_id: str
    filename: str
    file_sha256: str
    dry_run: bool
    already_imported: bool = Field(description="the same file was imported before: no change")
    rows_read: int
    stored: int = Field(description="readings stored (a dry run: that would be)")
    unchanged: int = Field(description="stored before with the same value")
    conflicts: int = Field(
        description="stored before with another value: duplicate_conflict, the stored value kept"
    )
    rejected: dict[str, int] = Field(description="rows refused, by reason")
    problems: list[ImportProblemOut] = Field(description="the first 100 refused rows")
    hours_to_recompute: int = Field(description="device-hours the calc service recomputes")
    closed_ledgers: list[ClosedLedgerOut] = Field(
        description="closed monthly ledgers these readings change: flagged for a revision"
    )
