"""Roles and what each may see and do. Pure.

=============  ==================================================================================
role           may
=============  ==================================================================================
admin          everything, at every site; the only role that manages API keys
operator       read registry, live values, rejected readings and the green register of its sites;
               change its sites' documents (devices, meters) and import their readings
enterprise     read its own organisation's part of its one site; write its own green register
regulator      read registry, live values, rejected readings and green register of its sites;
               never write; every request is audited
=============  ==================================================================================

Something a key may not see does not exist for it: the API answers 404, never 403, for another
site or another organisation's rows. 403 is only for an action the role may never take on
something it can see (an enterprise asking for rejected readings, a regulator writing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    ENTERPRISE = "enterprise"
    REGULATOR = "regulator"


class Action(StrEnum):
    READ_REGISTRY = "read_registry"
    READ_LIVE = "read_live"
    READ_REJECTIONS = "read_rejections"
    READ_GREEN = "read_green"
    WRITE_GREEN = "write_green"
    READ_ALARMS = "read_alarms"
    ACK_ALARMS = "ack_alarms"
    CONFIGURE_ALARMS = "configure_alarms"
    MANAGE_KEYS = "manage_keys"
    MANAGE_REGISTRY = "manage_registry"
    IMPORT_READINGS = "import_readings"
    READ_PUSH = "read_push"
    REVIEW_PUSH = "review_push"


_READ_SITE = frozenset(
    {
        Action.READ_REGISTRY,
        Action.READ_LIVE,
        Action.READ_REJECTIONS,
        Action.READ_GREEN,
        Action.READ_PUSH,
    }
)
PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.OPERATOR: _READ_SITE
    | {
        Action.READ_ALARMS,
        Action.ACK_ALARMS,
        Action.MANAGE_REGISTRY,
        Action.IMPORT_READINGS,
        Action.REVIEW_PUSH,
    },
    Role.ENTERPRISE: frozenset(
        {Action.READ_REGISTRY, Action.READ_LIVE, Action.READ_GREEN, Action.WRITE_GREEN}
    ),
    Role.REGULATOR: _READ_SITE | {Action.READ_ALARMS},
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: one API key (or the bootstrap admin key)."""

    key_id: str
    role: Role
    label: str
    site_ids: frozenset[str] | None  # None: every site (admin)
    org_id: str | None  # the one organisation of an enterprise key
    requests_per_minute: int | None = None  # None: the service default

    def sees_site(self, site_id: str) -> bool:
        return self.site_ids is None or site_id in self.site_ids

    @property
    def org_scope(self) -> str | None:
        """The organisation every query is restricted to, or ``None`` for the whole site."""
        return self.org_id if self.role is Role.ENTERPRISE else None

    def may(self, action: Action) -> bool:
        return action in PERMISSIONS[self.role]

    @property
    def audited(self) -> bool:
        """Every request of a regulator key goes to the audit log, whatever its outcome.

        (Writes by any key are audited too, by the route, in the write's own transaction.)
        """
        return self.role is Role.REGULATOR


def grant_problems(role: Role, site_ids: Sequence[str], org_id: str | None) -> list[str]:
    """What is wrong with giving a key of ``role`` these sites and organisation (empty: ok)."""
    problems: list[str] = []
    if role is Role.ADMIN and site_ids:
        problems.append("an admin key sees every site: give no --site")
    if role in (Role.OPERATOR, Role.REGULATOR) and not site_ids:
        problems.append(f"a {role.value} key needs at least one --site")
    if role is Role.ENTERPRISE and len(site_ids) != 1:
        problems.append("an enterprise key belongs to exactly one --site")
    if role is Role.ENTERPRISE and org_id is None:
        problems.append("an enterprise key needs its --org")
    if role is not Role.ENTERPRISE and org_id is not None:
        problems.append(f"only an enterprise key has an --org, not a {role.value} key")
    if len(set(site_ids)) != len(site_ids):
        problems.append("a --site is given twice")
    return problems
