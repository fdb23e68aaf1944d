"""Fixtures for the analysis tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from analysis_paths import sample_run


@pytest.fixture(scope="session")
def sample() -> Path:
    """The committed sample run (read-only: copy it before changing anything)."""
    return sample_run()
