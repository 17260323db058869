"""Where the calc service's reference data file used to live.

``calc_supplement.yaml`` moved into the factor library (``carbonflow/domain/factors/``) and is
loaded with the other data files by ``package_data_files()`` / ``default_library()``. Its file
name and version are unchanged, so stored ``factor_file`` / ``factor_value`` rows keep their
meaning (docs/calc.md). ``SUPPLEMENT_FILE`` is kept for callers that still list it explicitly;
the loaders ignore a file given twice.
"""

from carbonflow.domain.factors.library import SUPPLEMENT_FILE

__all__ = ["SUPPLEMENT_FILE"]
