"""The audit's key reproducers (scripts/audit/check.py: the ports in scripts/audit/, same attacks,
same "still reproduces" conditions as the audit's check.sh) each run and find their defect fixed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

CHECK = Path(__file__).resolve().parents[2] / "scripts" / "audit" / "check.py"


def _check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_check", CHECK)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


AUDIT = _check()


@pytest.mark.parametrize("name", sorted(AUDIT.STILL_REPRODUCES))
def test_reproducer_runs_and_finds_the_defect_fixed(name: str) -> None:
    path = AUDIT.script_path(name)
    assert path is not None and path.parent == CHECK.parent, f"{name}: no port in scripts/audit"
    verdict, out = AUDIT.run(name)
    assert verdict == "fixed", f"{name}: {verdict}\n{out[-2000:]}"


@pytest.mark.parametrize("name, output", [
    ("e4_close_amp", "20 triggers: attacker sent 960 B, victim got 9000 B"),
    ("e8_pn_replay", "after replaying packets #0 and #70: [b'relay-udp-payload-0']"),
    ("e10b_qpack_h3", "server HeadersReceived with 5000 fields, 12.5 MB"),
    ("e1_bypass", "server events: ['HandshakeCompleted']"),
])
def test_conditions_recognise_a_reproducing_defect(name: str, output: str) -> None:
    """The conditions can fail: outputs of the unfixed code count as reproducing."""
    assert AUDIT.STILL_REPRODUCES[name](output)
