"""REALITY for QUIC (sans-IO): Xray-compatible session_id token, HMAC certificate, server gate.

* :mod:`.keys`: Xray encodings (base64 RawURL X25519 keys, short IDs, versions);
* :mod:`.token`: the sealed session_id (HKDF/AES-GCM, spec §2);
* :mod:`.seal`: the client hook and HMAC verifier; :func:`.seal.reality_client_configuration`;
* :mod:`.auth`: ``verify_client_hello -> RealityVerdict`` and the replay cache;
* :mod:`.cert`: the per-process Ed25519 certificate with the HMAC signature;
* :mod:`.config`: the ``[reality]`` TOML table;
* :mod:`.gate`: per-flow decisions before any connection exists (mirror, accept, relay);
* :mod:`.probe`: crafted client Initials for tests, probes and benchmarks.

See ``docs/reality.md``.
"""
