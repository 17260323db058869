"""Reference data files of the calc service (loaded into factor_file / factor_value)."""

from pathlib import Path

SUPPLEMENT_FILE = Path(__file__).with_name("calc_supplement.yaml")
