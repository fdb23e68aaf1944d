"""Packet capture and extraction: tcpdump, key-log merging, editcap, tshark.

Theory of operation
-------------------
The runner captures on ``qrlink`` in the client namespace and in the server
namespace, i.e. on both sides of the impaired link (the client side sees what
was sent to the link and what survived it, the server side the converse).

* :func:`start_capture` starts ``tcpdump --immediate-mode -U -Z root -w``
  (without ``--immediate-mode`` a short capture can end up empty; ``-Z root``
  keeps tcpdump from dropping privileges before it opens the file) and waits for
  its "listening on" line, so no packet is missed at the start.
* :func:`start_captures` / :func:`stop_captures` do the same for several captures at once
  (every tcpdump is started before the first "listening on" is awaited; one settle wait, then
  every SIGINT), so two captures cost the time of one.
* :meth:`Capture.stop` waits ``settle_s`` (≈1 s, the environment doc's advice),
  then sends SIGINT and waits; tcpdump's "N packets captured" is returned.
* :func:`merge_keylogs` merges NSS key-log files from every endpoint (deduplicated,
  only well-formed lines); :func:`inject_secrets` embeds them with
  ``editcap --inject-secrets tls,KEYS`` into a pcapng that decrypts anywhere.
* :func:`tshark_fields` / :func:`tshark_ek` extract per-packet rows.

The argv builders are pure and unit-tested; the I/O functions run in lab tests.
On TUN links the capture link type is raw IP (no Ethernet header).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Capture",
    "editcap_inject_argv",
    "inject_secrets",
    "merge_keylogs",
    "start_capture",
    "start_captures",
    "stop_captures",
    "tcpdump_argv",
    "tshark_ek",
    "tshark_ek_argv",
    "tshark_fields",
    "tshark_fields_argv",
]

_KEYLOG_RE = re.compile(r"^[A-Z_0-9]+ [0-9a-fA-F]+ [0-9a-fA-F]+$")


#: Kernel capture buffer (tcpdump -B, KiB). libpcap's 2 MiB default overflows at a few
#: thousand packets/s when tcpdump waits for a core (2 cores, emulator and peers busy): a
#: 45 Mbit/s transfer lost ~40 % of the server-side capture to "dropped by kernel".
CAPTURE_BUFFER_KIB = 65536


def tcpdump_argv(iface: str, out_path: str, bpf_filter: str | None = None,
                 *, snaplen: int = 0, buffer_kib: int = CAPTURE_BUFFER_KIB) -> list[str]:
    """``tcpdump`` argv writing everything on ``iface`` to ``out_path`` (pcap)."""
    argv = ["tcpdump", "-i", iface, "--immediate-mode", "-U", "-Z", "root", "-n",
            "-B", str(buffer_kib), "-s", str(snaplen), "-w", out_path]
    if bpf_filter:
        argv.append(bpf_filter)
    return argv


def editcap_inject_argv(pcap: str, keylog: str, out_pcapng: str) -> list[str]:
    """``editcap`` argv embedding the TLS key log as a Decryption Secrets Block."""
    return ["editcap", "-F", "pcapng", "--inject-secrets", f"tls,{keylog}", pcap, out_pcapng]


def _decode_as_args(decode_as: Iterable[str]) -> list[str]:
    out: list[str] = []
    for d in decode_as:
        out += ["-d", d]
    return out


def tshark_fields_argv(pcap: str, fields: Sequence[str], display_filter: str | None = None,
                       *, decode_as: Iterable[str] = (), keylog: str | None = None,
                       two_pass: bool = False) -> list[str]:
    """``tshark -T fields`` argv: one tab-separated line per packet, header row first.

    Args:
        pcap: Input capture.
        fields: Field names (``frame.time_epoch``, ``quic.packet_number``, ...).
        display_filter: ``-Y`` filter.
        decode_as: ``-d`` rules, e.g. ``"udp.port==4433,quic"``.
        keylog: Key-log file (not needed for a pcapng with injected secrets).
        two_pass: ``-2`` (needed by some reassembly-dependent fields).
    """
    if not fields:
        raise ValueError("tshark_fields_argv: at least one field is needed")
    argv = ["tshark", "-r", pcap, "-n", "-T", "fields", "-E", "header=y", "-E", "separator=/t",
            "-E", "occurrence=a", "-E", "aggregator=,", "-E", "quote=n"]
    if two_pass:
        argv.append("-2")
    if keylog:
        argv += ["-o", f"tls.keylog_file:{keylog}"]
    argv += _decode_as_args(decode_as)
    if display_filter:
        argv += ["-Y", display_filter]
    for f in fields:
        argv += ["-e", f]
    return argv


def tshark_ek_argv(pcap: str, display_filter: str | None = None, fields: Sequence[str] = (),
                   *, decode_as: Iterable[str] = (), keylog: str | None = None) -> list[str]:
    """``tshark -T ek`` argv (newline-delimited JSON; with ``fields``, only those)."""
    argv = ["tshark", "-r", pcap, "-n", "-T", "ek"]
    if keylog:
        argv += ["-o", f"tls.keylog_file:{keylog}"]
    argv += _decode_as_args(decode_as)
    if display_filter:
        argv += ["-Y", display_filter]
    for f in fields:
        argv += ["-e", f]
    return argv


def tshark_fields(pcap: str, fields: Sequence[str], display_filter: str | None = None,
                  *, decode_as: Iterable[str] = (), keylog: str | None = None,
                  two_pass: bool = False, timeout: float = 300.0) -> list[dict[str, str]]:
    """Per-packet rows ``{field: value}`` (multiple occurrences joined by ``,``).

    Raises:
        RuntimeError: If tshark fails (the message has its stderr).
    """
    argv = tshark_fields_argv(pcap, fields, display_filter, decode_as=decode_as, keylog=keylog,
                              two_pass=two_pass)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> exit {r.returncode}: {r.stderr.strip()}")
    return parse_fields_output(r.stdout)


def parse_fields_output(text: str) -> list[dict[str, str]]:
    """Parse ``tshark -T fields -E header=y -E separator=/t`` output into dicts."""
    lines = text.splitlines()
    if not lines:
        return []
    header = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        values = line.split("\t")
        values += [""] * (len(header) - len(values))
        rows.append(dict(zip(header, values, strict=False)))
    return rows


def tshark_ek(pcap: str, display_filter: str | None = None, fields: Sequence[str] = (),
              *, decode_as: Iterable[str] = (), keylog: str | None = None,
              timeout: float = 300.0) -> list[dict[str, Any]]:
    """Per-packet ``layers`` dicts from ``tshark -T ek`` (index lines skipped).

    Field keys are tshark's ek names (dots become underscores, e.g. ``udp_length``).
    """
    argv = tshark_ek_argv(pcap, display_filter, fields, decode_as=decode_as, keylog=keylog)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> exit {r.returncode}: {r.stderr.strip()}")
    out = []
    for line in r.stdout.splitlines():
        if not line.strip():
            continue
        doc = json.loads(line)
        if "layers" in doc:
            out.append(doc["layers"])
    return out


def merge_keylogs(paths: Iterable[str], out_path: str) -> int:
    """Merge NSS key-log files into ``out_path``; return the number of lines written.

    Missing files are skipped; comments, blank and malformed lines are dropped;
    duplicates are kept once, in first-seen order.
    """
    seen: dict[str, None] = {}
    for p in paths:
        try:
            with open(p, errors="replace") as f:
                for line in f:
                    s = line.strip()
                    if _KEYLOG_RE.match(s):
                        seen.setdefault(s, None)
        except FileNotFoundError:
            continue
    with open(out_path, "w") as f:
        for s in seen:
            f.write(s + "\n")
    return len(seen)


def inject_secrets(pcap: str, keylog: str, out_pcapng: str, timeout: float = 120.0) -> str:
    """Write ``out_pcapng``: ``pcap`` plus the key log as a Decryption Secrets Block.

    With an empty key log the capture is converted to pcapng without secrets.
    """
    if os.path.getsize(keylog) == 0:
        argv = ["editcap", "-F", "pcapng", pcap, out_pcapng]
    else:
        argv = editcap_inject_argv(pcap, keylog, out_pcapng)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> exit {r.returncode}: {r.stderr.strip()}")
    return out_pcapng


@dataclass
class Capture:
    """A running tcpdump; stop it with :meth:`stop`.

    Attributes:
        argv: The full argv it was started with.
        out_path: The pcap being written.
        proc: The process.
    """

    argv: list[str]
    out_path: str
    proc: subprocess.Popen[str]
    packets: int | None = None
    dropped: int | None = None  #: tcpdump's "packets dropped by kernel"
    stderr: str = ""

    def stop(self, settle_s: float = 1.0, timeout: float = 10.0) -> int | None:
        """Wait ``settle_s``, SIGINT tcpdump, wait for it; return packets captured."""
        if self.proc.poll() is None:
            time.sleep(settle_s)
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        err = self.proc.stderr.read() if self.proc.stderr is not None else ""
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        m = re.search(r"(\d+) packets? captured", err)
        self.packets = int(m.group(1)) if m else None
        d = re.search(r"(\d+) packets? dropped by kernel", err)
        self.dropped = int(d.group(1)) if d else None
        self.stderr = err
        return self.packets


def start_capture(exec_prefix: Sequence[str], iface: str, out_path: str,
                  bpf_filter: str | None = None, *, ready_timeout: float = 5.0,
                  start_grace_s: float = 0.2, snaplen: int = 0) -> Capture:
    """Start tcpdump (inside a namespace via ``exec_prefix``) and wait until it listens.

    Args:
        exec_prefix: E.g. ``topo.exec_argv("client", [])`` → ``["ip","netns","exec",ns]``.
        iface: Interface (``qrlink``).
        out_path: pcap to write.
        bpf_filter: Optional capture filter.
        start_grace_s: Extra wait after "listening on" before returning.
        snaplen: Bytes kept per packet (0 = whole packets; e.g. 128 for TCP headers only).

    Raises:
        RuntimeError: If tcpdump exits or does not report "listening" in time.
    """
    argv = [*exec_prefix, *tcpdump_argv(iface, out_path, bpf_filter, snaplen=snaplen)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + ready_timeout
    seen = ""
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if "listening on" in line:
            time.sleep(start_grace_s)  # seen once: 2 first packets missed right after "listening"
            return Capture(argv=argv, out_path=out_path, proc=proc)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    raise RuntimeError(f"tcpdump did not start: {' '.join(argv)}: {seen.strip()}")


def start_captures(specs: Sequence[tuple[Sequence[str], str, str]], bpf_filter: str | None = None,
                   *, ready_timeout: float = 5.0, start_grace_s: float = 0.2,
                   snaplen: int = 0) -> list[Capture]:
    """Start one tcpdump per ``(exec_prefix, iface, out_path)`` together and wait until every one
    listens (the grace wait once, after the last); see :func:`start_capture`.

    Raises:
        RuntimeError: If a tcpdump exits or does not report "listening" in time (every capture
            started here is stopped first).
    """
    procs: list[tuple[list[str], str, subprocess.Popen[str]]] = []
    for prefix, iface, out_path in specs:
        argv = [*prefix, *tcpdump_argv(iface, out_path, bpf_filter, snaplen=snaplen)]
        procs.append((argv, out_path, subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True)))
    deadline = time.monotonic() + ready_timeout
    caps: list[Capture] = []
    try:
        for argv, out_path, proc in procs:
            assert proc.stderr is not None
            seen = ""
            while True:
                left = deadline - time.monotonic()
                r, _, _ = select.select([proc.stderr], [], [], max(0.0, left))
                line = proc.stderr.readline() if r else ""
                seen += line
                if "listening on" in line:
                    caps.append(Capture(argv=argv, out_path=out_path, proc=proc))
                    break
                if not line:
                    raise RuntimeError(f"tcpdump did not start: {' '.join(argv)}: {seen.strip()}")
    except BaseException:
        for _argv, _out, proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
        raise
    time.sleep(start_grace_s)  # seen once: 2 first packets missed right after "listening"
    return caps


def stop_captures(caps: Sequence[Capture], settle_s: float = 1.0,
                  timeout: float = 10.0) -> list[int | None]:
    """Wait ``settle_s`` once, SIGINT every running tcpdump, then collect each
    (:meth:`Capture.stop`); returns the packets captured per capture."""
    running = [c for c in caps if c.proc.poll() is None]
    if running:
        time.sleep(settle_s)
    for c in running:
        with contextlib.suppress(ProcessLookupError):
            c.proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    for c in running:
        try:
            c.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait()
    return [c.stop(settle_s=0.0, timeout=timeout) for c in caps]  # exited: reads the counts
