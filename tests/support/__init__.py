"""Helpers the tests share: harnesses, seeds, waiting, API cases. Nothing here is a test."""

from pathlib import Path

#: The repository's root folder.
ROOT = Path(__file__).resolve().parents[2]
