"""Where the installed peers and tools are. Everything is installed by ``scripts/setup.sh``.

Each function returns an absolute path or raises :class:`PeerNotInstalled` with a message that
says to run ``scripts/setup.sh``; a missing peer is an installation bug, never a reason to skip.

Built peers live in ``$QR_PEERS_DIR`` (default ``/opt/quicreality-peers``):

* ``curl-h3/bin/curl``  curl 7.88.1 (Debian bookworm source) + GnuTLS + ngtcp2 0.12 + nghttp3 0.8
* ``quicgo/bin/qrgo``   our quic-go 0.29 peer (``interop/quicgo/src/qrgo``)

Debian packages: ``/usr/bin/gtlsclient``, ``/usr/sbin/gtlsserver`` (ngtcp2 0.12), ``iperf3``,
``tcpdump``, ``tshark``, ``editcap``. The aioquic peers are scripts in ``interop/aioquic`` run
with this interpreter (``sys.executable``), which must have aioquic 1.7.2.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

DEFAULT_PEERS_DIR = Path("/opt/quicreality-peers")
#: the repository checkout this package was imported from (editable install)
REPO_ROOT = Path(__file__).resolve().parents[3]
_SYSTEM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


class PeerNotInstalled(RuntimeError):
    """A peer or tool is missing: the machine was not set up with scripts/setup.sh."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"peer {name} not installed ({detail}): run scripts/setup.sh")
        self.name = name
        self.detail = detail


def peers_dir() -> Path:
    """``$QR_PEERS_DIR`` or ``/opt/quicreality-peers``."""
    return Path(os.environ.get("QR_PEERS_DIR") or DEFAULT_PEERS_DIR)


def _executable(name: str, path: Path) -> Path:
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise PeerNotInstalled(name, f"no executable {path}")
    return path


def _system_tool(name: str, preferred: str | None = None) -> Path:
    if preferred and os.access(preferred, os.X_OK):
        return Path(preferred)
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SYSTEM_DIRS))
    if not found:
        raise PeerNotInstalled(name, f"{name} not on PATH nor in {', '.join(_SYSTEM_DIRS)}")
    return Path(found)


def curl_h3() -> Path:
    """curl with HTTP/3 built by setup.sh."""
    return _executable("curl-h3", peers_dir() / "curl-h3" / "bin" / "curl")


def qrgo() -> Path:
    """Our quic-go 0.29 client/server."""
    return _executable("quic-go (qrgo)", peers_dir() / "quicgo" / "bin" / "qrgo")


def gtlsclient() -> Path:
    """ngtcp2 0.12 example client (Debian ngtcp2-client)."""
    return _system_tool("gtlsclient", "/usr/bin/gtlsclient")


def gtlsserver() -> Path:
    """ngtcp2 0.12 example server (Debian ngtcp2-server)."""
    return _system_tool("gtlsserver", "/usr/sbin/gtlsserver")


def iperf3() -> Path:
    """iperf3 (Debian)."""
    return _system_tool("iperf3", "/usr/bin/iperf3")


def tcpdump() -> Path:
    """tcpdump (Debian)."""
    return _system_tool("tcpdump", "/usr/bin/tcpdump")


def tshark() -> Path:
    """tshark (Debian)."""
    return _system_tool("tshark", "/usr/bin/tshark")


def editcap() -> Path:
    """editcap (Debian wireshark-common), e.g. to inject a key log into a pcapng."""
    return _system_tool("editcap", "/usr/bin/editcap")


def python() -> Path:
    """The interpreter that runs the aioquic peers and our stack: this one."""
    return Path(sys.executable)


def aioquic_script(name: str) -> Path:
    """``interop/aioquic/<name>`` (``h3server.py`` or ``h3client.py``); checks aioquic imports."""
    path = REPO_ROOT / "interop" / "aioquic" / name
    if not path.is_file():
        raise PeerNotInstalled("aioquic", f"no script {path} (is quicreality an editable install?)")
    try:
        import aioquic
    except ImportError as exc:
        raise PeerNotInstalled("aioquic", f"cannot import aioquic in {sys.executable}: {exc}") from exc
    if getattr(aioquic, "__version__", "") != "1.7.2":
        raise PeerNotInstalled("aioquic", f"aioquic {aioquic.__version__} instead of 1.7.2")
    return path


ALL_TOOLS = {
    "curl-h3": curl_h3,
    "qrgo": qrgo,
    "gtlsclient": gtlsclient,
    "gtlsserver": gtlsserver,
    "iperf3": iperf3,
    "tcpdump": tcpdump,
    "tshark": tshark,
    "editcap": editcap,
    "aioquic-server": lambda: aioquic_script("h3server.py"),
    "aioquic-client": lambda: aioquic_script("h3client.py"),
}


def check_all() -> dict[str, Path]:
    """Locate every peer and tool; raises :class:`PeerNotInstalled` naming all that are missing."""
    found: dict[str, Path] = {}
    missing: list[PeerNotInstalled] = []
    for name, fn in ALL_TOOLS.items():
        try:
            found[name] = fn()
        except PeerNotInstalled as exc:
            missing.append(exc)
    if missing:
        raise PeerNotInstalled(", ".join(e.name for e in missing),
                               "; ".join(e.detail for e in missing))
    return found
