"""Attribute ``perf script`` samples of a compiled (mypyc) run to stages, by innermost frame.

    perf record -F 1999 --call-graph dwarf,16384 -e cpu-clock -o OUT.data -- PYTHON SCRIPT ...
    perf script -i OUT.data > OUT.script
    python scripts/perf/perf_stages.py OUT.script

Each sample goes to the innermost compiled function on its stack (``CPyDef_<module>___<name>``);
time in libpython, libc and OpenSSL counts for it. Samples from start-up (imports, the parser,
unpickling, the dynamic loader) are left out; the garbage collector, ``sendmsg`` and ``recvmsg``
win over the compiled frame wherever they are on the stack. Samples with no compiled frame are
"interpreted" (the asyncio edge, HTTP/3, the download sink). Prints the share per module and the
top functions.
"""

from __future__ import annotations

import collections
import re
import sys

#: frames that mark a start-up sample (not part of the per-datagram work)
STARTUP = ("_PyPegen", "PyImport", "import_find_and_load", "_dl_", "dl_main", "load_binget",
           "_pickle", "Unpickler", "load_build", "PyMarshal", "marshal")
#: wherever on the stack, these win over the compiled frame
WINS = (("gc_collect_main", "gc"), ("sendmsg", "sendmsg"), ("recvmsg", "recvmsg"),
        ("epoll_wait", "epoll"))
#: module (or function) -> the stage of the client budget in docs/performance.md
STAGES = (
    ("fast.push_ack_frame", "ACK generation (assembler, ACK frame, seal)"),
    ("assembler", "ACK generation (assembler, ACK frame, seal)"),
    ("packet_builder", "ACK generation (assembler, ACK frame, seal)"),
    ("crypto", "AEAD decrypt + header unprotect (crypto.py, OpenSSL)"),
    ("packet", "header parse (pull_quic_header)"),
    ("buffer", "Buffer (pull_*, push_*)"),
    ("core", "connection core (receive_datagram, _process_packet, next_event)"),
    ("receive", "frame dispatch + parse (receive.py, frames/fast.py)"),
    ("fast", "frame dispatch + parse (receive.py, frames/fast.py)"),
    ("rangeset", "range sets (received PNs, duplicate check)"),
    ("quic", "stream reassembly (QuicStream, StreamManager)"),
    ("connection", "stream reassembly (QuicStream, StreamManager)"),
    ("loss", "recovery (loss, RTT, pacer, CUBIC)"),
    ("rtt", "recovery (loss, RTT, pacer, CUBIC)"),
    ("pacer", "recovery (loss, RTT, pacer, CUBIC)"),
    ("cubic", "recovery (loss, RTT, pacer, CUBIC)"),
    ("interpreted", "interpreted: asyncio edge, HTTP/3, sink, event loop"),
    ("recvmsg", "recvmsg + sendmsg + epoll_wait"),
    ("sendmsg", "recvmsg + sendmsg + epoll_wait"),
    ("epoll", "recvmsg + sendmsg + epoll_wait"),
    ("gc", "garbage collector"),
)
CPYDEF = re.compile(r"CPyDef_([A-Za-z0-9_]+?)___([A-Za-z0-9_]+)")


def samples(path: str) -> list[list[str]]:
    """The stacks (innermost first) of the python3 samples in a ``perf script`` text."""
    out: list[list[str]] = []
    stack: list[str] | None = None
    with open(path, encoding="utf-8", errors="replace") as src:
        for line in src:
            if not line.strip():
                if stack is not None:
                    out.append(stack)
                stack = None
                continue
            if not line.startswith(("\t", " ")):
                stack = [] if line.startswith("python3") else None
                continue
            if stack is not None:
                parts = line.split(None, 1)
                stack.append(parts[1] if len(parts) > 1 else parts[0])
    if stack is not None:
        out.append(stack)
    return out


def classify(stack: list[str]) -> tuple[str, str] | None:
    """(stage, function) of one sample; None for a start-up sample."""
    joined = " ".join(stack)
    if any(s in joined for s in STARTUP):
        return None
    for needle, stage in WINS:
        if needle in joined:
            return stage, needle
    for frame in stack:
        m = CPYDEF.search(frame)
        if m:
            return m.group(1), f"{m.group(1)}.{m.group(2)}"
    return "interpreted", stack[0].split("+")[0] if stack else "?"


def main(argv: list[str]) -> int:
    """Print the attribution of ``argv[0]``."""
    stages: collections.Counter[str] = collections.Counter()
    funcs: collections.Counter[str] = collections.Counter()
    pairs: collections.Counter[tuple[str, str]] = collections.Counter()
    startup = 0
    for stack in samples(argv[0]):
        got = classify(stack)
        if got is None:
            startup += 1
            continue
        stages[got[0]] += 1
        funcs[got[1]] += 1
        pairs[got] += 1
    total = sum(stages.values())
    print(f"{total} samples ({startup} start-up samples left out)")
    grouped: collections.Counter[str] = collections.Counter()
    for (module, func), n in pairs.items():
        grouped[next((st for key, st in STAGES if key in (func, module)),
                     "spaces, ECN, path, PN skipping, key update, other")] += n
    print("by stage:")
    for stage, n in grouped.most_common():
        print(f"  {stage:66s} {n:6d} {100 * n / total:5.1f} %")
    for stage, n in stages.most_common():
        print(f"  {stage:32s} {n:6d} {100 * n / total:5.1f} %")
    print("top functions:")
    for func, n in funcs.most_common(int(argv[1]) if len(argv) > 1 else 40):
        print(f"  {func:60s} {n:6d} {100 * n / total:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
