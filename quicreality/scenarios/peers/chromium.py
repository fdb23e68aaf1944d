"""Headless Chromium (Debian's ``chromium`` 156) as an HTTP/3 client: the camouflage reference.

Client only, one URL per run. The adapter's argv runs this module's own runner::

    python -m quicreality.scenarios.peers.chromium URL --out FILE [--ca CA | --pin CERT ...]
        [--keylog F] [--netlog F] [--resolve ADDR] [--timeout S] [--keep-profile DIR]

which follows ``../shared/docs/chromium.md``:

* a throwaway profile and ``$HOME`` in a temp dir (removed afterwards);
* ``--origin-to-force-quic-on=HOST:PORT`` (QUIC only, no TCP race) and
  ``--host-resolver-rules='MAP HOST ADDR, MAP * ~NOTFOUND, EXCLUDE ADDR'``: Chromium resolves
  ``localhost`` to ``::1`` first and never falls back, and without the rule it looks up Google
  hosts at start; with it nothing leaves loopback;
* certificates: ``--pin CERT`` pins the SPKI of the certificate the server presents
  (``--ignore-certificate-errors-spki-list``; ``--ignore-certificate-errors`` alone does not work
  for QUIC, and pinning the CA's SPKI does not either, measured); ``--ca CA`` trusts a CA through
  an NSS database in the throwaway ``$HOME`` (``certutil``, package ``libnss3-tools``);
* ``SSLKEYLOGFILE`` (5 NSS lines per connection) and an optional netlog (Chromium writes no qlog);
* Chromium exits 0 even when the page failed: the runner reads ``Page load failed: net::ERR_*``
  from its stderr. The DOM (``--dump-dom``) goes to ``--out``; ``proto`` is ``h3`` when the
  netlog shows STREAM frames received over a QUIC session.

The runner prints one JSON line ``{"url","status","bytes","secs","proto","file","error"}``
(:func:`~.base.parse_json_lines` parses it) and exits 1 if the page failed. ``status`` is
``None``: Chromium does not print it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import paths
from .base import Command, DownloadRequest, PeerSpec, Unsupported, expected_files, parse_json_lines
from .paths import PeerNotInstalled

__all__ = ["BASE_FLAGS", "SPEC", "binary", "chromium_argv", "download", "fetch", "nss_db_argvs",
           "runner_logs", "spki_pin"]

#: the real binary (``/usr/bin/chromium`` is a wrapper script that prints noise)
CHROMIUM = Path("/usr/lib/chromium/chromium")
_FAILED = re.compile(r"Page load failed: (net::ERR_[A-Z0-9_]+)")
#: Headless, no sandbox (root in a netns), nothing fetched or synced at start.
BASE_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-extensions", "--disable-default-apps", "--no-default-browser-check")


def binary() -> Path:
    """The Chromium binary; :class:`~.paths.PeerNotInstalled` if Debian's package is missing."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    raise PeerNotInstalled("chromium", f"no executable {CHROMIUM} (apt-get install chromium)")


def certutil() -> Path:
    """NSS ``certutil`` (package ``libnss3-tools``)."""
    found = shutil.which("certutil") or ("/usr/bin/certutil" if os.access(
        "/usr/bin/certutil", os.X_OK) else None)
    if not found:
        raise PeerNotInstalled("certutil", "no certutil (apt-get install libnss3-tools)")
    return Path(found)


def spki_pin(cert_pem: bytes) -> str:
    """base64 SHA-256 of the first certificate's SubjectPublicKeyInfo (Chromium's pin format)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def chromium_argv(url: str, *, profile: Path, pins: Sequence[str] = (),
                  netlog: Path | None = None, resolve: str = "127.0.0.1",
                  extra: Sequence[str] = ()) -> list[str]:
    """argv of headless Chromium dumping ``url``'s DOM, over QUIC only, resolving to ``resolve``.

    Args:
        url: ``https://HOST:PORT/path``.
        profile: The (throwaway) ``--user-data-dir``.
        pins: base64 SPKI hashes to accept (:func:`spki_pin`).
        netlog: Where Chromium writes its netlog (at exit).
        resolve: The address every name of the URL resolves to.
        extra: More Chromium flags.
    """
    u = urlsplit(url)
    host, port = u.hostname or "localhost", u.port or 443
    is_ip = host.replace(".", "").isdigit() or ":" in host
    rules = f"MAP * ~NOTFOUND, EXCLUDE {host}" if is_ip else (
        f"MAP {host} {resolve}, MAP * ~NOTFOUND, EXCLUDE {resolve}")
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    argv = [str(binary()), *BASE_FLAGS, f"--user-data-dir={profile}",
            f"--origin-to-force-quic-on={authority}", f"--host-resolver-rules={rules}"]
    if pins:
        argv.append("--ignore-certificate-errors-spki-list=" + ",".join(pins))
    if netlog is not None:
        argv += [f"--log-net-log={netlog}", "--net-log-capture-mode=Everything"]
    argv += [*extra, "--dump-dom", url]
    return argv


def render_argv(url: str, *, profile: Path, screenshot: Path | None = None,
                window: tuple[int, int] = (1100, 950)) -> list[str]:
    """argv of headless Chromium rendering a plain-HTTP page on loopback (a status page): the
    DOM after rendering on stdout (``--dump-dom``), or a PNG of the window at ``screenshot``.
    No name resolves (``MAP * ~NOTFOUND``), so nothing leaves the host."""
    host = urlsplit(url).hostname or "127.0.0.1"
    argv = [str(binary()), *BASE_FLAGS, "--hide-scrollbars", f"--user-data-dir={profile}",
            f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {host}",
            f"--window-size={window[0]},{window[1]}"]
    argv += [f"--screenshot={screenshot}"] if screenshot is not None else ["--dump-dom"]
    return [*argv, url]


def nss_db_argvs(home: Path, ca: Path) -> list[list[str]]:
    """certutil argvs creating ``$HOME/.pki/nssdb`` and trusting ``ca`` for TLS servers."""
    db = f"sql:{home / '.pki' / 'nssdb'}"
    tool = str(certutil())
    return [[tool, "-d", db, "-N", "--empty-password"],
            [tool, "-d", db, "-A", "-t", "C,,", "-n", "quicreality-ca", "-i", str(ca)]]


def download(req: DownloadRequest) -> Command:
    """This module's runner fetching ``req.urls[0]`` (one URL per run) with headless Chromium."""
    if len(req.urls) != 1:
        raise ValueError("the chromium peer fetches one URL per run")
    if req.cipher:
        raise Unsupported("Chromium has no switch to restrict TLS 1.3 cipher suites")
    if req.insecure:
        raise Unsupported("Chromium cannot skip certificate checks for QUIC; give a CA")
    out = expected_files(req)[0]
    argv = [str(paths.python()), "-m", "quicreality.scenarios.peers.chromium", req.urls[0],
            "--out", str(out), "--timeout", f"{req.timeout:g}"]
    if req.ca is not None:
        argv += ["--ca", str(req.ca)]
    extra, dirs = runner_logs(req)
    return Command(argv=(*argv, *extra), cwd=paths.REPO_ROOT, make_dirs=dirs)


def runner_logs(req: DownloadRequest) -> tuple[list[str], tuple[Path, ...]]:
    """The runners' ``--keylog``/``--netlog`` options for ``req`` and the directories they need
    (the netlog goes to ``qlog_dir/chromium-netlog.json``: Chromium writes no qlog)."""
    argv: list[str] = []
    if req.keylog is not None:
        argv += ["--keylog", str(req.keylog)]
    dirs = [req.out_dir]
    if req.qlog_dir is not None:
        argv += ["--netlog", str(req.qlog_dir / "chromium-netlog.json")]
        dirs.append(req.qlog_dir)
    return argv, tuple(dirs)


# ---- the runner (I/O) ---------------------------------------------------------------------------


def _h3_in_netlog(netlog: Path) -> bool:
    try:
        data = json.loads(netlog.read_text())
    except (OSError, ValueError):
        return False
    types = {v: k for k, v in data.get("constants", {}).get("logEventTypes", {}).items()}
    return any(types.get(e.get("type")) == "QUIC_SESSION_STREAM_FRAME_RECEIVED"
               for e in data.get("events", []))


def fetch(url: str, *, out: Path, ca: Path | None = None, pin_certs: Sequence[Path] = (),
          keylog: Path | None = None, netlog: Path | None = None, resolve: str = "127.0.0.1",
          timeout: float = 60.0, keep_profile: Path | None = None) -> dict[str, Any]:
    """Run Chromium once on ``url`` in a throwaway profile; the result as our JSON-line dict.

    Args:
        url: The page.
        out: Where the DOM is written.
        ca: Trust this CA (NSS database).
        pin_certs: Accept the SPKI of these certificates.
        keylog: ``SSLKEYLOGFILE`` (appended to).
        netlog: Keep the netlog here (else it lives in the temp dir).
        resolve: Address the URL's host name maps to.
        timeout: Seconds before Chromium is killed.
        keep_profile: Copy the profile dir here for debugging.
    """
    tmp = Path(tempfile.mkdtemp(prefix="qrchromium-"))
    try:
        home = tmp / "home"
        home.mkdir()
        if ca is not None:
            for argv in nss_db_argvs(home, ca):
                (home / ".pki" / "nssdb").mkdir(parents=True, exist_ok=True)
                subprocess.run(argv, check=True, capture_output=True, timeout=30)
        pins = [spki_pin(Path(c).read_bytes()) for c in pin_certs]
        log = netlog or tmp / "netlog.json"
        argv = chromium_argv(url, profile=tmp / "profile", pins=pins, netlog=log, resolve=resolve)
        env = {**os.environ, "HOME": str(home)}
        if keylog is not None:
            env["SSLKEYLOGFILE"] = str(keylog)
        t0 = time.monotonic()
        try:
            r = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, check=False)
            stdout, stderr = r.stdout, r.stderr.decode(errors="replace")
            error = None
        except subprocess.TimeoutExpired as exc:
            stdout, stderr = exc.stdout or b"", (exc.stderr or b"").decode(errors="replace")
            error = f"timeout after {timeout:g} s"
        secs = time.monotonic() - t0
        m = _FAILED.search(stderr)
        if m:
            error = m.group(1)
        elif error is None and not stdout.strip():
            error = "no DOM (see stderr)"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(stdout)
        if keep_profile is not None:
            shutil.copytree(tmp, keep_profile, dirs_exist_ok=True)
        return {"url": url, "status": None, "bytes": len(stdout), "secs": round(secs, 3),
                "proto": "h3" if _h3_in_netlog(log) else None, "file": str(out), "error": error}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """The runner's entry point (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m quicreality.scenarios.peers.chromium")
    p.add_argument("url")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--ca", type=Path)
    p.add_argument("--pin", type=Path, action="append", default=[],
                   help="certificate whose SPKI Chromium accepts (repeatable)")
    p.add_argument("--keylog", type=Path)
    p.add_argument("--netlog", type=Path)
    p.add_argument("--resolve", default="127.0.0.1")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--keep-profile", type=Path)
    a = p.parse_args(argv)
    if a.ca is None and not a.pin:
        p.error("give --ca or --pin")
    res = fetch(a.url, out=a.out, ca=a.ca, pin_certs=a.pin, keylog=a.keylog, netlog=a.netlog,
                resolve=a.resolve, timeout=a.timeout, keep_profile=a.keep_profile)
    print(json.dumps(res), flush=True)
    return 0 if res["error"] is None else 1


SPEC = PeerSpec(
    name="chromium",
    description="Debian chromium 156, headless (client; one URL per run)",
    download=download,
    parse=parse_json_lines,
    qlog_format="none (Chromium netlog JSON in qlog_dir/chromium-netlog.json)",
    ciphers=False,
)


if __name__ == "__main__":
    sys.exit(main())
