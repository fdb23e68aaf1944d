"""Fixtures for interop tests (real peers on loopback): see peers_harness.py.

pki, www, udp_port, peer_harness. Tests that drive our own stack against the peers reuse them:

    def test_ours_vs_ngtcp2(peer_harness, pki, www, udp_port): ...
"""

from peers_harness import *  # noqa: F403 -- the fixtures, by name
