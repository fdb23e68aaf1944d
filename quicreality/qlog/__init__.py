"""qlog: the always-present :class:`QlogSink` the connection calls, and a JSON-SEQ writer.

``NullSink`` (default) drops everything; ``JsonSeqWriter`` writes ``<odcid>_<client|server>.sqlog``
in qlog 0.3 (qvis) or current-draft flavour; ``RecordingSink`` keeps calls in memory for tests.
"""

from quicreality.qlog.sink import (
    NullSink,
    QlogSink,
    RecordingSink,
    ack_frame,
    crypto_frame,
    padding_frame,
    simple_frame,
    stream_frame,
)
from quicreality.qlog.writer import JsonSeqWriter, qlog_path

__all__ = [
    "JsonSeqWriter",
    "NullSink",
    "QlogSink",
    "RecordingSink",
    "ack_frame",
    "crypto_frame",
    "padding_frame",
    "qlog_path",
    "simple_frame",
    "stream_frame",
]
