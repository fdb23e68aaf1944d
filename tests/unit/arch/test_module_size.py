"""Architecture rule: every module of the package is at most 700 lines (docs/architecture.md)."""

from __future__ import annotations

from pathlib import Path

import quicreality

MAX_MODULE_LINES = 700


def test_every_module_is_at_most_700_lines() -> None:
    root = Path(quicreality.__file__).parent
    too_long = {
        str(path.relative_to(root)): n
        for path in sorted(root.rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"
