"""Headless Chromium fetching several URLs byte-exact over one HTTP/3 connection (DevTools).

The :mod:`.chromium` runner dumps the DOM of one page, which is not the body of a random binary
file. This runner drives the same browser through the DevTools protocol over a pipe
(``--remote-debugging-pipe``: Chromium reads commands on fd 3 and writes answers on fd 4, each
a JSON message terminated by a NUL byte; no TCP port is opened)::

    python -m quicreality.scenarios.peers.chromium_fetch --out-dir DIR --ca CA [--keylog F]
        [--netlog F] [--timeout S] [--max-in-flight N] [--new-connection-after N]
        [--key-update-after N] [--no-0rtt] URL...

It opens a blank tab and evaluates one script there that ``fetch()``es every URL at once, so the
requests share the browser's one QUIC connection to the origin, as a page's subresources do
(``--max-in-flight N``: at most N pending at a time, for experiments; :func:`download`, the
interop matrix's adapter, adds it when ``$QR_CHROMIUM_MAX_IN_FLIGHT`` is set, else all at once),
and returns each body as base64; the protocol of each response comes from DevTools'
``Network.responseReceived`` events (Resource Timing hides ``nextHopProtocol`` cross-origin).
The blank tab has an opaque origin, so the browser runs with ``--disable-web-security`` (no CORS
check on the responses; it needs the throwaway ``--user-data-dir`` it gets). Everything else is
:mod:`.chromium`'s recipe: QUIC forced on the origin, no name resolution, the CA trusted
through an NSS database in a throwaway ``$HOME``, ``SSLKEYLOGFILE``.

``--new-connection-after N`` (the interop matrix's resumption and zerortt, N = 1) fetches the
first N URLs, then closes every connection of the browser with
``chrome.benchmarking.closeConnections()`` (a page sees it only under
``--enable-net-benchmarking``, which the browser then gets), then fetches the rest: the new
connection offers the session ticket the first one received (the TLS session cache is not
flushed by the close), and sends the GETs in 0-RTT when the ticket allows early data
(``--no-0rtt``: never). ``--key-update-after N`` makes the browser initiate a key update after
N packets sent in a key phase (RFC 9001 §6). Both are quiche flags, which Chromium takes from
its ``QUIC`` field trial's ``set_quic_flags`` parameter (:func:`quic_flag_argv`).

Each body is written to ``DIR/<last path segment>``; one JSON line per URL
(``url, status, bytes, secs, proto, file, error``) goes to stdout. Exit status 0 when every URL
was fetched with status 200 over ``h3``, else 1.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from . import paths
from .base import Command, DownloadRequest, Unsupported, out_name
from .chromium import BASE_FLAGS, binary, nss_db_argvs, runner_logs

__all__ = ["CLOSE_CONNECTIONS_JS", "FETCH_ALL_JS", "KEY_UPDATE_FLAG", "MAX_IN_FLIGHT_ENV",
           "NO_0RTT_FLAG", "batches", "browser_argv", "download", "fetch_all", "fetch_script",
           "quic_flag_argv", "quiche_flags"]

#: fds Chromium uses with ``--remote-debugging-pipe`` (it reads 3, writes 4).
CDP_IN_FD, CDP_OUT_FD = 3, 4

#: The field trial whose parameters Chromium's network session configurator reads (QUIC flags
#: among them); the group is ours (a name starting with "Disabled" would turn QUIC off).
QUIC_TRIAL, QUIC_GROUP = "QUIC", "Enabled"
#: quiche's flag: "if non-zero and key update is allowed, the maximum number of packets sent
#: for each key phase before initiating a key update" (RFC 9001 §6).
KEY_UPDATE_FLAG = "FLAGS_quic_key_update_confidentiality_limit"
#: quiche's flag: "if true, QUIC client with TLS will not try 0-RTT" (a resumption alone).
NO_0RTT_FLAG = "FLAGS_quic_disable_client_tls_zero_rtt"

#: Environment default of ``--max-in-flight`` (so the interop runner's adapter can be told).
MAX_IN_FLIGHT_ENV = "QR_CHROMIUM_MAX_IN_FLIGHT"

#: Fetch every URL of ``URLS``, at most ``LIMIT`` at a time (0: all at once, as a page's
#: subresources); resolve to one record per URL, in order.
FETCH_ALL_JS = """
(async (urls, limit) => {
  const b64 = (buf) => {
    const u8 = new Uint8Array(buf); let s = "";
    for (let i = 0; i < u8.length; i += 0x8000)
      s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
    return btoa(s);
  };
  const one = async (url) => {
    const t0 = performance.now();
    try {
      const r = await fetch(url, {cache: "no-store"});
      const body = await r.arrayBuffer();
      const e = performance.getEntriesByName(url).pop();
      return {url, final: r.url, status: r.status, body: b64(body),
              secs: (performance.now() - t0) / 1000, proto: e ? e.nextHopProtocol : null,
              error: null};
    } catch (err) {
      return {url, status: null, body: "", secs: (performance.now() - t0) / 1000, proto: null,
              error: String(err)};
    }
  };
  // each worker starts its first fetch before yielding: with limit 0 every fetch() is issued
  // in the same task, as before the limit existed
  const out = new Array(urls.length);
  let next = 0;
  const worker = async () => {
    while (next < urls.length) { const i = next++; out[i] = await one(urls[i]); }
  };
  const n = limit > 0 ? Math.min(limit, urls.length) : urls.length;
  await Promise.all(Array.from({length: n}, worker));
  return out;
})(URLS, LIMIT)
"""


#: Close every connection of the browser's network context (QUIC sessions get a
#: CONNECTION_CLOSE), keeping its TLS session cache: the next fetch makes a new connection that
#: offers the cached ticket (and sends 0-RTT if the ticket allows early data). The page sees
#: ``chrome.benchmarking`` only when Chromium runs with ``--enable-net-benchmarking``.
CLOSE_CONNECTIONS_JS = """
(() => {
  if (!(window.chrome && chrome.benchmarking && chrome.benchmarking.closeConnections))
    throw new Error("chrome.benchmarking.closeConnections is missing");
  chrome.benchmarking.closeConnections();
  return true;
})()
"""


def batches(urls: Sequence[str], new_connection_after: int = 0) -> list[list[str]]:
    """The URLs fetched on each connection: all on one (``new_connection_after`` 0, or not less
    than the number of URLs), else the first N, then the rest (QIR's resumption and zerortt:
    N = 1)."""
    if new_connection_after < 0:
        raise ValueError("new_connection_after must be >= 0")
    n = new_connection_after
    if n == 0 or n >= len(urls):
        return [list(urls)]
    return [list(urls[:n]), list(urls[n:])]


def fetch_script(urls: Sequence[str], max_in_flight: int = 0) -> str:
    """:data:`FETCH_ALL_JS` for ``urls`` with at most ``max_in_flight`` fetches pending at a
    time (0: all at once)."""
    if max_in_flight < 0:
        raise ValueError("max_in_flight must be >= 0")
    return FETCH_ALL_JS.replace("URLS, LIMIT", f"{json.dumps(list(urls))}, {max_in_flight:d}")


def quic_flag_argv(flags: Mapping[str, int | bool]) -> list[str]:
    """Chromium's switches that set QUIC (quiche) flags: its network session configurator
    reads ``set_quic_flags`` (``FLAGS_name=VALUE,...``, quiche's ``SetQuicFlagByName``) from
    the ``QUIC`` field trial's parameters, which ``--force-fieldtrials`` and
    ``--force-fieldtrial-params`` set (the value URL-escaped)."""
    if not flags:
        return []

    def text(v: int | bool) -> str:
        return ("true" if v else "false") if isinstance(v, bool) else f"{v:d}"

    value = quote(",".join(f"{k}={text(v)}" for k, v in flags.items()), safe="")
    return [f"--force-fieldtrials={QUIC_TRIAL}/{QUIC_GROUP}",
            f"--force-fieldtrial-params={QUIC_TRIAL}.{QUIC_GROUP}:set_quic_flags/{value}"]


def quiche_flags(key_update_after: int = 0, *, zero_rtt: bool = True) -> dict[str, int | bool]:
    """The quiche flags for ``--key-update-after N`` (initiate a key update after N packets
    sent in a key phase; 0: never, Chromium's default) and ``--no-0rtt``."""
    if key_update_after < 0:
        raise ValueError("key_update_after must be >= 0")
    flags: dict[str, int | bool] = {}
    if key_update_after:
        flags[KEY_UPDATE_FLAG] = key_update_after
    if not zero_rtt:
        flags[NO_0RTT_FLAG] = True
    return flags


def browser_argv(urls: Sequence[str], *, profile: Path, netlog: Path | None = None,
                 benchmarking: bool = False,
                 quic_flags: Mapping[str, int | bool] | None = None) -> list[str]:
    """Chromium with a DevTools pipe, QUIC forced on the URLs' origins, no name resolution
    (``benchmarking``: with ``--enable-net-benchmarking``, for :data:`CLOSE_CONNECTIONS_JS`;
    ``quic_flags``: quiche flags, see :func:`quic_flag_argv` and :func:`quiche_flags`)."""
    origins: list[str] = []
    hosts: list[str] = []
    for url in urls:
        u = urlsplit(url)
        host, port = u.hostname or "localhost", u.port or 443
        origin = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if origin not in origins:
            origins.append(origin)
        if host not in hosts:
            hosts.append(host)
    # with an IPv6 URL only dotted names are mapped away (which still keeps every DNS name off
    # the network): no EXCLUDE spelling of an IPv6 literal is documented
    v6 = any(":" in h for h in hosts)
    rules = ", ".join(["MAP *.* ~NOTFOUND" if v6 else "MAP * ~NOTFOUND",
                       *(f"EXCLUDE {h}" for h in hosts if ":" not in h)])
    argv = [str(binary()), *BASE_FLAGS, f"--user-data-dir={profile}",
            "--remote-debugging-pipe", "--disable-web-security",
            # an IPv6 origin ([fd00::2]:443) is not taken (measured: TCP was tried), "*" is
            "--origin-to-force-quic-on=" + ("*" if v6 else ",".join(origins)),
            f"--host-resolver-rules={rules}"]
    if benchmarking:
        argv.append("--enable-net-benchmarking")
    argv += quic_flag_argv(quic_flags or {})
    if netlog is not None:
        argv += [f"--log-net-log={netlog}", "--net-log-capture-mode=Everything"]
    return [*argv, "about:blank"]


class _Pipe:
    """The DevTools protocol over Chromium's fds 3/4 (NUL-terminated JSON messages)."""

    def __init__(self, to_browser: int, from_browser: int, deadline: float) -> None:
        self._w = to_browser
        self._r = from_browser
        self._buf = b""
        self._next = 0
        self.deadline = deadline
        #: the protocol of each response by URL (``Network.responseReceived`` events)
        self.protocols: dict[str, str] = {}

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        """Send one command and wait for its answer (events in between are skipped)."""
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._w, data):]
        while True:
            reply = self._read()
            if reply.get("method") == "Network.responseReceived":
                resp = reply.get("params", {}).get("response", {})
                self.protocols[resp.get("url", "")] = resp.get("protocol", "")
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium before the timeout")
            ready, _, _ = select.select([self._r], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe (it exited)")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(msg)
        return parsed


def _evaluate(cdp: _Pipe, session: str, expr: str) -> Any:
    """Evaluate ``expr`` in the tab (awaiting a promise) and return its value."""
    res = cdp.call("Runtime.evaluate", {"expression": expr, "awaitPromise": True,
                                        "returnByValue": True}, session)
    if "exceptionDetails" in res:
        raise RuntimeError(f"page script failed: {res['exceptionDetails']}")
    return res["result"].get("value")


def _spawn(argv: list[str], env: dict[str, str], stderr: Path | None) -> tuple[int, int, int]:
    """Start Chromium in its own process group with its DevTools pipe on fds 3 (commands) and 4
    (answers) and stderr to ``stderr`` (None: ours); returns (pid, our write end, our read end)."""
    cmd_r, cmd_w = os.pipe()
    ans_r, ans_w = os.pipe()
    # lift the child's ends above 3 and 4 first, so the dup2s below cannot clobber each other
    hi_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10)
    hi_w = fcntl.fcntl(ans_w, fcntl.F_DUPFD_CLOEXEC, 10)
    for fd in (cmd_r, ans_w):
        os.close(fd)
    actions: list[tuple[Any, ...]] = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                      (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]
    if stderr is not None:
        actions.append((os.POSIX_SPAWN_OPEN, 2, str(stderr),
                        os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
    actions += [(os.POSIX_SPAWN_DUP2, hi_r, CDP_IN_FD), (os.POSIX_SPAWN_DUP2, hi_w, CDP_OUT_FD)]
    try:
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions, setpgroup=0)
    finally:
        os.close(hi_r)
        os.close(hi_w)
    return pid, cmd_w, ans_r


def _stop(pid: int, grace: float = 3.0) -> None:
    """End Chromium's process group: SIGTERM, then SIGKILL after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # the renderers and utilities of the group


def fetch_all(urls: Sequence[str], *, out_dir: Path, ca: Path, keylog: Path | None = None,
              netlog: Path | None = None, timeout: float = 60.0,
              log: Path | None = None, max_in_flight: int = 0,
              new_connection_after: int = 0,
              quic_flags: Mapping[str, int | bool] | None = None) -> list[dict[str, Any]]:
    """Fetch ``urls`` in one headless Chromium (see the module docstring); one record per URL.

    Args:
        urls: ``https://HOST:PORT/path`` URLs (their origins get QUIC forced on).
        out_dir: Where the bodies go (``<last path segment>``).
        ca: The CA Chromium trusts (NSS database in a throwaway ``$HOME``).
        keylog: ``SSLKEYLOGFILE`` (appended to).
        netlog: Where Chromium writes its netlog.
        timeout: Seconds for the whole run (start, fetches, exit).
        log: Chromium's stderr (default: this process's).
        max_in_flight: At most this many fetches pending at a time (0: all at once).
        new_connection_after: Fetch the first N URLs, close every connection of the browser,
            then fetch the rest on a new one (0: all on one; see :func:`batches`).
        quic_flags: quiche flags for the browser (see :func:`quiche_flags`).
    """
    tmp = Path(tempfile.mkdtemp(prefix="qrchromium-"))
    deadline = time.monotonic() + timeout
    pid = None
    try:
        home = tmp / "home"
        (home / ".pki" / "nssdb").mkdir(parents=True)
        for argv in nss_db_argvs(home, ca):
            subprocess.run(argv, check=True, capture_output=True, timeout=30)
        env = {**os.environ, "HOME": str(home)}
        if keylog is not None:
            env["SSLKEYLOGFILE"] = str(keylog)
        argv = browser_argv(urls, profile=tmp / "profile", netlog=netlog,
                            benchmarking=0 < new_connection_after < len(urls),
                            quic_flags=quic_flags)
        pid, to_b, from_b = _spawn(argv, env, log)
        try:
            cdp = _Pipe(to_b, from_b, deadline)
            target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = cdp.call("Target.attachToTarget", {"targetId": target,
                                                         "flatten": True})["sessionId"]
            cdp.call("Network.enable", {}, session)
            records: list[dict[str, Any]] = []
            for i, batch in enumerate(batches(urls, new_connection_after)):
                if i:  # every connection closed; the session tickets stay cached
                    _evaluate(cdp, session, CLOSE_CONNECTIONS_JS)
                records += _evaluate(cdp, session, fetch_script(batch, max_in_flight))
            for rec in records:  # Resource Timing hides it cross-origin; DevTools does not
                # (keyed by the normalised URL: Chromium drops a default :443)
                rec["proto"] = cdp.protocols.get(rec.get("final") or rec["url"]) or rec["proto"]
            with contextlib.suppress(OSError, RuntimeError, TimeoutError):
                cdp.deadline = min(deadline, time.monotonic() + 5.0)
                cdp.call("Browser.close")  # a clean exit writes the netlog and closes QUIC
        finally:
            os.close(to_b)
            os.close(from_b)
    except (OSError, RuntimeError, TimeoutError, subprocess.SubprocessError, KeyError) as e:
        return [{"url": u, "status": None, "bytes": 0, "secs": 0.0, "proto": None,
                 "file": str(out_dir / out_name(u)), "error": f"{type(e).__name__}: {e}"}
                for u in urls]
    finally:
        if pid is not None:
            _stop(pid)
        shutil.rmtree(tmp, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for rec in records:
        body = base64.b64decode(rec["body"])
        path = out_dir / out_name(rec["url"])
        error = rec["error"]
        if error is None and rec["status"] != 200:
            error = f"HTTP status {rec['status']}"
        elif error is None and rec["proto"] != "h3":
            error = f"fetched over {rec['proto']!r}, not h3"
        if error is None:
            path.write_bytes(body)
        results.append({"url": rec["url"], "status": rec["status"], "bytes": len(body),
                        "secs": round(float(rec["secs"]), 3), "proto": rec["proto"],
                        "file": str(path), "error": error})
    return results


def _env_int(name: str) -> int:
    """An integer from the environment (unset or empty: 0; malformed: -1, which is refused)."""
    v = os.environ.get(name, "").strip()
    try:
        return int(v) if v else 0
    except ValueError:
        return -1


def download(req: DownloadRequest) -> Command:
    """This module's runner fetching every URL of ``req`` in one browser."""
    if req.cipher:
        raise Unsupported("Chromium has no switch to restrict TLS 1.3 cipher suites")
    if req.insecure or req.ca is None:
        raise Unsupported("Chromium cannot skip certificate checks for QUIC; give a CA")
    argv = [str(paths.python()), "-m", "quicreality.scenarios.peers.chromium_fetch",
            "--out-dir", str(req.out_dir), "--ca", str(req.ca), "--timeout", f"{req.timeout:g}"]
    limit = _env_int(MAX_IN_FLIGHT_ENV)
    if limit < 0:
        raise ValueError(f"${MAX_IN_FLIGHT_ENV} must be an integer >= 0")
    if limit:  # on the argv, so the run's logged command shows it
        argv += ["--max-in-flight", str(limit)]
    extra, dirs = runner_logs(req)
    return Command(argv=(*argv, *extra, *req.urls), cwd=paths.REPO_ROOT, make_dirs=dirs)


def main(argv: list[str] | None = None) -> int:
    """The runner's entry point (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m quicreality.scenarios.peers.chromium_fetch")
    p.add_argument("urls", nargs="+", metavar="URL")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--ca", type=Path, required=True)
    p.add_argument("--keylog", type=Path)
    p.add_argument("--netlog", type=Path)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--max-in-flight", type=int, metavar="N",
                   default=0,
                   help="at most N fetches pending at a time (default 0: all at once, as a "
                        "page's subresources)")
    p.add_argument("--new-connection-after", type=int, metavar="N", default=0,
                   help="fetch the first N URLs, close every connection (the session tickets "
                        "stay cached), fetch the rest on a new connection (default 0: all on "
                        "one; QIR's resumption and zerortt use 1)")
    p.add_argument("--key-update-after", type=int, metavar="N", default=0,
                   help="initiate a key update after N packets sent in a key phase (quiche's "
                        "quic_key_update_confidentiality_limit through the QUIC field trial; "
                        "default 0: never, as Chromium)")
    p.add_argument("--no-0rtt", action="store_true",
                   help="never send 0-RTT (quiche's quic_disable_client_tls_zero_rtt; default: "
                        "Chromium sends its GETs in 0-RTT on a resumed connection whose ticket "
                        "allows early data)")
    a = p.parse_args(argv)
    if a.key_update_after < 0:
        p.error("--key-update-after must be >= 0")
    if a.max_in_flight < 0:
        p.error("--max-in-flight must be >= 0")
    if a.new_connection_after < 0:
        p.error("--new-connection-after must be >= 0")
    results = fetch_all(a.urls, out_dir=a.out_dir, ca=a.ca, keylog=a.keylog, netlog=a.netlog,
                        timeout=a.timeout, max_in_flight=a.max_in_flight,
                        new_connection_after=a.new_connection_after,
                        quic_flags=quiche_flags(a.key_update_after, zero_rtt=not a.no_0rtt))
    for r in results:
        print(json.dumps(r), flush=True)
    return 0 if all(r["error"] is None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
