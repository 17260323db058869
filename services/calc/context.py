"""What a step of the calc cycle works with: one site, in one transaction.

Steps (``changes``, ``site_cycle``, ``steps/*``) read and write through the connection and
return what they did; only the engine commits or rolls back and fills the cycle report. Nothing
here imports the engine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from carbonflow.domain.site.plan import SitePlan
from carbonflow.logs import LogOnce
from carbonflow.storage.carbon import FactorSets
from carbonflow.storage.db import Conn
from services.calc.reference import Reference

#: The calc cycle's logger, under the name it had when the cycle was one module
#: (``services.calc.engine``), so that log filters and alerts keep seeing every line.
log = logging.getLogger("services.calc.engine")


@dataclass(frozen=True)
class StepContext:
    conn: Conn  # the site's transaction
    plan: SitePlan
    reference: Reference
    now: datetime  # ``computed_at`` / ``raised_at`` of what the cycle writes
    log_once: LogOnce  # data and calc problems, once per process
    factor_sets: FactorSets  # ids cached only once the engine committed
