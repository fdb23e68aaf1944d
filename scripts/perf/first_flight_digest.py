"""A digest of the client's first flights and of the Initial planner's output, to show that a
speed-up changed no byte on the wire.

    python scripts/perf/first_flight_digest.py

Prints two SHA-256 digests:

* ``flights``: the datagrams of the client's first flight and of its first PTO retransmission,
  for seeds 0..59 of each mode of ``handshake_instructions.py`` (plain, plain-chrome, reality),
  with seeded randomness;
* ``plans``: 400 seeded random hello lengths, CID and token lengths, planned with the ``chrome``
  and ``minimal`` layouts: each plan's repr, its packets' payloads and their qlog frames.

Run it on two checkouts (``PYTHONPATH`` set to each); equal digests mean equal bytes. Used for
docs/reality.md, "Handshake benchmark" (branch h11e).
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import handshake_instructions as h

from quicreality.quic import initial_layout as il
from quicreality.quic.connection import QuicConnection


def flights_digest() -> str:
    """SHA-256 over every mode's first flights and PTO retransmissions, seeds 0..59."""
    out = hashlib.sha256()
    for mode in ("plain", "plain-chrome", "reality"):
        for seed in range(60):
            conn = QuicConnection(configuration=h._client(mode, seed))
            conn.connect(h.SERVER, 0.0)
            for now in (0.0, 5.0):  # the first flight, then the first PTO's
                for data, _ in conn.datagrams_to_send(now):
                    out.update(data)
    return out.hexdigest()


def plans_digest() -> str:
    """SHA-256 over 400 seeded plans per layout, their payloads and qlog frames."""
    out = hashlib.sha256()
    for seed in range(400):
        r = random.Random(seed)
        n = r.randrange(1, 6000)

        def rng(k: int, r: random.Random = r) -> bytes:
            return r.randbytes(k)

        for layout in ("chrome", "minimal"):
            plan = il.plan_initial_flight(
                n, rng, layout, dcid_length=r.choice([0, 8, 20]),
                scid_length=r.choice([0, 8]), token_length=r.choice([0, 30]))
            out.update(repr(plan).encode())
            hello = r.randbytes(n)
            for packet in plan.packets:
                out.update(il.encode_payload(packet, hello))
                out.update(repr(il.describe_frames(packet)).encode())
    return out.hexdigest()


if __name__ == "__main__":
    print("flights", flights_digest())
    print("plans", plans_digest())
