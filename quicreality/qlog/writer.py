"""A JSON-SEQ qlog writer (RFC 7464 records: ``0x1E`` + JSON + ``\\n``), one file per connection.

Two flavours, chosen at construction:

``"0.3"`` (default, loads in qvis)
    Header ``{"qlog_version": "0.3", "qlog_format": "JSON-SEQ", "title", "trace": {"vantage_point",
    "common_fields": {"ODCID", "group_id", "time_format": "relative", "reference_time": <ms>,
    "protocol_type": ["QUIC", "HTTP3"]}}}``; event names ``transport:packet_sent``,
    ``recovery:metrics_updated``, ``recovery:packet_lost``, ``connectivity:connection_started`` ...

``"draft"`` (current qlog drafts: main-schema HEAD, quic-events -13)
    Header ``{"file_schema": "urn:ietf:params:qlog:file:sequential", "serialization_format":
    "application/qlog+json-seq", "title", "trace": {"vantage_point", "common_fields":
    {"group_id", "time_format": "relative_to_epoch", "reference_time": {"clock_type": "monotonic",
    "epoch": "unknown"}}, "event_schemas": ["urn:ietf:params:qlog:events:quic-13"]}}``; names
    ``quic:packet_sent``, ``quic:recovery_metrics_updated``, ``quic:packet_lost``,
    ``quic:parameters_set`` (``initiator`` instead of ``owner``), frame lengths under ``raw``.

Times: ``time`` is milliseconds since the first ``now`` the writer saw (the core's clock, never
the wall clock). In 0.3 that first ``now`` (in ms) is the ``reference_time``; in the draft flavour
the monotonic epoch is "unknown" and the same value is kept as the extension field
``common_fields.quicreality_reference_now_ms`` so traces of one run can be aligned. The header
is therefore written when the first event (or ``close()``) arrives.

Writes are buffered (64 KiB); nothing is flushed per event. Call :meth:`JsonSeqWriter.close`.

Packet events are most of a trace (two per datagram, one per end), so the 0.3 flavour writes them,
and the STREAM, ACK, PING and PADDING frames in them, with one f-string each instead of through
the JSON encoder (:func:`packet_event_json`); the text is the encoder's, byte for byte, and any
other shape (another frame, an unexpected field or type) goes through the encoder. On the
runner's lossy-wan link the encoder took about a tenth of an endpoint's CPU (docs/performance.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Self, TextIO

from quicreality.qlog.sink import Address, FrameDict, Owner
from quicreality.wire.error_codes import QuicErrorCode

Flavour = Literal["0.3", "draft"]
DRAFT_EVENT_SCHEMA = "urn:ietf:params:qlog:events:quic-13"
_RS = "\x1e"

# canonical event -> (0.3 name, draft name)
_NAMES: dict[str, tuple[str, str]] = {
    "packet_sent": ("transport:packet_sent", "quic:packet_sent"),
    "packet_received": ("transport:packet_received", "quic:packet_received"),
    "parameters_set": ("transport:parameters_set", "quic:parameters_set"),
    "metrics_updated": ("recovery:metrics_updated", "quic:recovery_metrics_updated"),
    "packet_lost": ("recovery:packet_lost", "quic:packet_lost"),
    "congestion_state_updated": (
        "recovery:congestion_state_updated",
        "quic:congestion_state_updated",
    ),
    "connection_started": ("connectivity:connection_started", "quic:connection_started"),
    "connection_state_updated": (
        "connectivity:connection_state_updated",
        "quic:connection_state_updated",
    ),
    "connection_closed": ("connectivity:connection_closed", "quic:connection_closed"),
    "key_updated": ("security:key_updated", "quic:key_updated"),
    "version_information": ("transport:version_information", "quic:version_information"),
    # written through ``custom`` under its 0.3 name (RFC 9000 §13.4 validation, connection/ecn.py)
    "recovery:ecn_state_updated": ("recovery:ecn_state_updated", "quic:ecn_state_updated"),
}

#: Our connection states to quic-events -13 $ConnectionState (BaseConnectionStates and
#: GranularConnectionStates); the 0.3 flavour keeps our names, which existing traces carry.
_DRAFT_STATES: dict[str, str] = {
    "firstflight": "attempted",
    "connected": "handshake_complete",
    "terminated": "closed",
}


def qlog_path(directory: str | Path, odcid: bytes, is_client: bool) -> Path:
    """The conventional file name ``<odcid hex>_<client|server>.sqlog`` inside ``directory``."""
    return Path(directory) / f"{odcid.hex()}_{'client' if is_client else 'server'}.sqlog"


def _json_default(value: object) -> object:
    """Serialise bytes as hex and other iterables as lists."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


_encode = json.JSONEncoder(separators=(",", ":"), default=_json_default).encode


#: JSON text of the qlog packet types (and of any other string seen), to skip the encoder
_STR_JSON: dict[str, str] = {}


def _str_json(value: str) -> str:
    """``value`` as a JSON string (cached: packet types are a handful of names)."""
    text = _STR_JSON.get(value)
    if text is None:
        text = _encode(value)
        if len(_STR_JSON) < 64:
            _STR_JSON[value] = text
    return text


def _frame_json(frame: FrameDict) -> str:
    """One frame dict as the encoder would write it; STREAM, ACK, PING and PADDING from the
    :mod:`~quicreality.qlog.sink` builders' shapes directly, anything else through the encoder."""
    kind = frame.get("frame_type")
    n = len(frame)
    try:
        if kind == "stream" and n == 5:
            sid, offset, length, fin = frame["stream_id"], frame["offset"], frame["length"], frame["fin"]
            if type(sid) is int and type(offset) is int and type(length) is int and type(fin) is bool:
                return (f'{{"frame_type":"stream","stream_id":{sid},"offset":{offset},'
                        f'"length":{length},"fin":{"true" if fin else "false"}}}')
        elif kind == "ack" and (n == 3 or n == 6):
            delay, ranges = frame["ack_delay"], frame["acked_ranges"]
            if type(delay) is float and math.isfinite(delay) and type(ranges) is list:
                parts = []
                for r in ranges:
                    if type(r) is not list or len(r) != 2 or type(r[0]) is not int \
                            or type(r[1]) is not int:
                        return _encode(frame)
                    parts.append(f"[{r[0]},{r[1]}]")
                text = f'{{"frame_type":"ack","ack_delay":{delay!r},"acked_ranges":[{",".join(parts)}]'
                if n == 3:
                    return text + "}"
                ect0, ect1, ce = frame["ect0"], frame["ect1"], frame["ce"]
                if type(ect0) is int and type(ect1) is int and type(ce) is int:
                    return f'{text},"ect0":{ect0},"ect1":{ect1},"ce":{ce}}}'
        elif kind == "ping" and n == 1:
            return '{"frame_type":"ping"}'
        elif kind == "padding" and n == 2:
            length = frame["length"]
            if type(length) is int:
                return f'{{"frame_type":"padding","length":{length}}}'
    except KeyError:
        pass
    return _encode(frame)


def packet_event_json(packet_type: str, packet_number: int, length: int,
                      frames: list[FrameDict] | None) -> str:
    """The ``data`` of a 0.3 packet event, as ``_encode`` would write it, without the encoder
    for the usual shapes (:func:`_frame_json`)."""
    if type(packet_number) is not int or type(length) is not int:
        data: dict[str, Any] = {"header": {"packet_type": packet_type, "packet_number": packet_number},
                                "raw": {"length": length}}
        if frames is not None:
            data["frames"] = frames
        return _encode(data)
    head = (f'{{"header":{{"packet_type":{_str_json(packet_type)},"packet_number":{packet_number}}},'
            f'"raw":{{"length":{length}}}')
    if frames is None:
        return head + "}"
    return f'{head},"frames":[{",".join([_frame_json(fr) for fr in frames])}]}}'


def _draft_frames(frames: list[FrameDict]) -> list[FrameDict]:
    """Move ``length`` into ``raw.length`` (quic-events -12+, #495)."""
    out = []
    for frame in frames:
        if "length" in frame:
            moved = {k: v for k, v in frame.items() if k != "length"}
            moved["raw"] = {**frame.get("raw", {}), "length": frame["length"]}
            frame = moved
        out.append(frame)
    return out


def _endpoint(addr: Address | None, cid: bytes) -> dict[str, Any]:
    """A TupleEndpointInfo (quic-events -13)."""
    info: dict[str, Any] = {"connection_ids": [cid.hex()]}
    if addr is not None:
        host, port = addr
        if ":" in host:
            info["ip_v6"], info["port_v6"] = host, port
        else:
            info["ip_v4"], info["port_v4"] = host, port
    return info


def _transport_error_name(code: int) -> str:
    """quic-events $TransportError / CryptoError name for a code, or "unknown"."""
    if 0x100 <= code <= 0x1FF:
        return f"crypto_error_{code:#x}"
    try:
        return QuicErrorCode(code).name.lower()
    except ValueError:
        return "unknown"


class JsonSeqWriter:
    """Write one connection's qlog trace as JSON-SEQ (implements :class:`~quicreality.qlog.sink.QlogSink`).

    Args:
        path: output file (see :func:`qlog_path`).
        vantage_point: ``"client"`` or ``"server"``.
        odcid: original destination connection ID (the trace's group ID).
        flavour: ``"0.3"`` (qvis) or ``"draft"`` (current drafts).
        title: header title.
        frames: log frame lists in packet events (sets :attr:`wants_frames`).
        event_schemas: extra event-schema URIs for the draft header (e.g. for ``reality:`` events).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        vantage_point: Literal["client", "server"],
        odcid: bytes,
        flavour: Flavour = "0.3",
        title: str = "quicreality",
        frames: bool = True,
        event_schemas: Sequence[str] = (),
    ):
        if flavour not in ("0.3", "draft"):
            raise ValueError(f"unknown qlog flavour {flavour!r}")
        if vantage_point not in ("client", "server"):
            raise ValueError(f"bad vantage point {vantage_point!r}")
        self.path = Path(path)
        self._vantage_point = vantage_point
        self._odcid = odcid
        self._draft = flavour == "draft"
        self._name_index = 1 if self._draft else 0
        self._title = title
        self._event_schemas = list(event_schemas)
        self.wants_frames = frames
        self._file: TextIO | None = open(self.path, "w", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115
        self._t0: float | None = None
        self._last_metrics: dict[str, float | int] = {}

    # --- plumbing ------------------------------------------------------------------------------

    def _header(self, t0: float) -> dict[str, Any]:
        """The first JSON-SEQ record."""
        vantage = {"type": self._vantage_point}
        if self._draft:
            return {
                "file_schema": "urn:ietf:params:qlog:file:sequential",
                "serialization_format": "application/qlog+json-seq",
                "title": self._title,
                "trace": {
                    "vantage_point": vantage,
                    "common_fields": {
                        "group_id": self._odcid.hex(),
                        "time_format": "relative_to_epoch",
                        "reference_time": {"clock_type": "monotonic", "epoch": "unknown"},
                        "quicreality_reference_now_ms": t0 * 1000.0,
                    },
                    "event_schemas": [DRAFT_EVENT_SCHEMA, *self._event_schemas],
                },
            }
        return {
            "qlog_version": "0.3",
            "qlog_format": "JSON-SEQ",
            "title": self._title,
            "trace": {
                "vantage_point": vantage,
                "common_fields": {
                    "ODCID": self._odcid.hex(),
                    "group_id": self._odcid.hex(),
                    "time_format": "relative",
                    "reference_time": t0 * 1000.0,
                    "protocol_type": ["QUIC", "HTTP3"],
                },
            },
        }

    def _emit(self, now: float, name: str, data: dict[str, Any]) -> None:
        """Write one event record; ``name`` is a canonical key of ``_NAMES`` or a verbatim name."""
        f = self._file
        if f is None:
            return
        t0 = self._started(f, now)
        names = _NAMES.get(name)
        full = names[self._name_index] if names is not None else name
        f.write(
            f'{_RS}{{"time":{round((now - t0) * 1000.0, 3)!r},"name":"{full}","data":{_encode(data)}}}\n'
        )

    def _started(self, f: TextIO, now: float) -> float:
        """The time origin; the first event sets it and writes the header record first."""
        t0 = self._t0
        if t0 is None:
            self._t0 = t0 = now
            f.write(_RS + _encode(self._header(now)) + "\n")
        return t0

    def close(self) -> None:
        """Flush and close the file (writes the header if no event came)."""
        if self._file is None:
            return
        if self._t0 is None:
            self._file.write(_RS + _encode(self._header(0.0)) + "\n")
        self._file.close()
        self._file = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- QlogSink ------------------------------------------------------------------------------

    def _packet(
        self,
        now: float,
        name: str,
        packet_type: str,
        packet_number: int,
        length: int,
        frames: list[FrameDict] | None,
    ) -> None:
        if not self._draft:
            f = self._file
            if f is None:
                return
            t0 = self._started(f, now)
            f.write(f'{_RS}{{"time":{round((now - t0) * 1000.0, 3)!r},"name":"{_NAMES[name][0]}",'
                    f'"data":{packet_event_json(packet_type, packet_number, length, frames)}}}\n')
            return
        data: dict[str, Any] = {
            "header": {"packet_type": packet_type, "packet_number": packet_number},
            "raw": {"length": length},
        }
        if frames is not None:
            data["frames"] = _draft_frames(frames)
        self._emit(now, name, data)

    def packet_sent(
        self,
        now: float,
        packet_type: str,
        packet_number: int,
        length: int,
        frames: list[FrameDict] | None,
    ) -> None:
        """``transport:packet_sent`` / ``quic:packet_sent``."""
        self._packet(now, "packet_sent", packet_type, packet_number, length, frames)

    def packet_received(
        self,
        now: float,
        packet_type: str,
        packet_number: int,
        length: int,
        frames: list[FrameDict] | None,
    ) -> None:
        """``transport:packet_received`` / ``quic:packet_received``."""
        self._packet(now, "packet_received", packet_type, packet_number, length, frames)

    def packet_lost(self, now: float, packet_type: str, packet_number: int, trigger: str) -> None:
        """``recovery:packet_lost`` / ``quic:packet_lost``."""
        self._emit(
            now,
            "packet_lost",
            {
                "header": {"packet_type": packet_type, "packet_number": packet_number},
                "trigger": trigger,
            },
        )

    def metrics_updated(
        self,
        now: float,
        *,
        min_rtt: float,
        smoothed_rtt: float,
        latest_rtt: float,
        rtt_variance: float,
        congestion_window: int,
        bytes_in_flight: int,
        ssthresh: int | None = None,
        pacing_rate: float | None = None,
    ) -> None:
        """``recovery:metrics_updated`` / ``quic:recovery_metrics_updated``:
        only changed fields, RTTs in ms."""
        current: dict[str, float | int | None] = {
            "min_rtt": round(min_rtt * 1000.0, 3),
            "smoothed_rtt": round(smoothed_rtt * 1000.0, 3),
            "latest_rtt": round(latest_rtt * 1000.0, 3),
            "rtt_variance": round(rtt_variance * 1000.0, 3),
            "congestion_window": congestion_window,
            "bytes_in_flight": bytes_in_flight,
            "ssthresh": ssthresh,
            "pacing_rate": None if pacing_rate is None else int(pacing_rate),
        }
        last = self._last_metrics
        changed = {k: v for k, v in current.items() if v is not None and last.get(k) != v}
        if changed:
            last.update(changed)  # type: ignore[arg-type]
            self._emit(now, "metrics_updated", changed)

    def congestion_state_updated(
        self, now: float, old: str | None, new: str, trigger: str | None = None
    ) -> None:
        """``recovery:congestion_state_updated`` / ``quic:congestion_state_updated``."""
        data: dict[str, Any] = {"new": new}
        if old is not None:
            data["old"] = old
        if trigger is not None:
            data["trigger"] = trigger
        self._emit(now, "congestion_state_updated", data)

    def parameters_set(self, now: float, owner: Owner, params: dict[str, Any]) -> None:
        """``transport:parameters_set`` (``owner``) / ``quic:parameters_set`` (``initiator``)."""
        self._emit(
            now, "parameters_set", {"initiator" if self._draft else "owner": owner, **params}
        )

    def connection_state_updated(self, now: float, old: str | None, new: str) -> None:
        """``connectivity:connection_state_updated`` / ``quic:connection_state_updated`` (the
        draft flavour names the states as quic-events -13's $ConnectionState does)."""
        if self._draft:
            new = _DRAFT_STATES.get(new, new)
            old = _DRAFT_STATES.get(old, old) if old is not None else None
        data: dict[str, Any] = {"new": new}
        if old is not None:
            data["old"] = old
        self._emit(now, "connection_state_updated", data)

    def connection_started(
        self,
        now: float,
        src: Address | None,
        dst: Address | None,
        version: int,
        scid: bytes,
        dcid: bytes,
    ) -> None:
        """``connectivity:connection_started`` / ``quic:connection_started``
        (+ ``quic:version_information``)."""
        if self._draft:
            self._emit(
                now,
                "connection_started",
                {"local": _endpoint(src, scid), "remote": _endpoint(dst, dcid)},
            )
            self._emit(now, "version_information", {"chosen_version": f"{version:08x}"})
            return
        data: dict[str, Any] = {}
        if src is not None and dst is not None:
            data["ip_version"] = "ipv6" if ":" in src[0] else "ipv4"
            data.update(src_ip=src[0], src_port=src[1], dst_ip=dst[0], dst_port=dst[1])
        data.update(
            protocol="QUIC", quic_version=f"{version:08x}", src_cid=scid.hex(), dst_cid=dcid.hex()
        )
        self._emit(now, "connection_started", data)

    def connection_closed(
        self,
        now: float,
        owner: Owner,
        error_code: int,
        reason: str,
        *,
        is_application: bool = False,
        trigger: str | None = None,
    ) -> None:
        """``connectivity:connection_closed`` / ``quic:connection_closed``."""
        data: dict[str, Any]
        if self._draft:
            data = {"initiator": owner}
            if is_application:
                data.update(application_error="unknown", error_code=error_code)
            else:
                name = _transport_error_name(error_code)
                data["connection_error"] = name
                if name == "unknown":
                    data["error_code"] = error_code
        else:
            data = {
                "owner": owner,
                "application_code" if is_application else "connection_code": error_code,
            }
        data["reason"] = reason
        if trigger is not None:
            data["trigger"] = trigger
        self._emit(now, "connection_closed", data)

    def key_updated(
        self, now: float, key_type: str, trigger: str, *, key_phase: int | None = None
    ) -> None:
        """``security:key_updated`` (``generation``) / ``quic:key_updated`` (``key_phase``)."""
        data: dict[str, Any] = {"key_type": key_type, "trigger": trigger}
        if key_phase is not None:
            data["key_phase" if self._draft else "generation"] = key_phase
        self._emit(now, "key_updated", data)

    def version_information(self, now: float, *, client_versions: Iterable[int],
                            server_versions: Iterable[int], chosen: int) -> None:
        """``transport:version_information`` / ``quic:version_information`` (hex versions)."""
        data: dict[str, Any] = {"chosen_version": f"{chosen:08x}"}
        client = [f"{v:08x}" for v in client_versions]
        server = [f"{v:08x}" for v in server_versions]
        if client:
            data["client_versions"] = client
        if server:
            data["server_versions"] = server
        self._emit(now, "version_information", data)

    def custom(self, now: float, name: str, data: dict[str, Any]) -> None:
        """A project event written with ``name`` verbatim (e.g. ``reality:verdict``)."""
        self._emit(now, name if ":" in name else f"quicreality:{name}", data)
