"""result.json in QIR's schema (as interop.py exports it) and our matrix.html."""

from __future__ import annotations

import json
from html.parser import HTMLParser

from quicreality.interop.cases import by_name
from quicreality.interop.report import REQUIRED_KEYS, matrix_html, result_json
from quicreality.interop.runner import Outcome
from quicreality.interop.verdicts import Verdict

H, S, G = by_name("handshake"), by_name("retry"), by_name("goodput")


def _o(case: object, s: str, c: str, v: Verdict | None, rep: int = 1) -> Outcome:
    return Outcome(case, s, c, rep, v, v.reason if v else "not run", 1.0)  # type: ignore[arg-type]


OUTS = [
    _o(H, "ours", "ours", Verdict("succeeded", "1 handshake")),
    _o(H, "ngtcp2", "ours", Verdict("failed", "2 handshakes")),
    _o(S, "ours", "ours", Verdict("succeeded")),
    _o(S, "ngtcp2", "ours", None),
    _o(G, "ours", "ours", Verdict("succeeded", "", {"goodput_kbps": 9000.0}), 1),
    _o(G, "ours", "ours", Verdict("succeeded", "", {"goodput_kbps": 9200.0}), 2),
    _o(G, "ngtcp2", "ours", Verdict("unsupported", "exit 127")),
]


def test_schema_matches_qir_export() -> None:
    doc = result_json(OUTS, [H, S, G], ["ours", "ngtcp2"], ["ours"], 1.0, 2.0, "logs_x")
    assert tuple(doc) == REQUIRED_KEYS
    json.dumps(doc)  # plain JSON
    assert doc["tests"]["S"] == {"name": "retry", "desc": S.desc} and "G" in doc["tests"]
    # clients outer, servers inner: index = client * len(servers) + server
    assert len(doc["results"]) == 2 and len(doc["measurements"]) == 2
    ours_ours, ngtcp2_ours = doc["results"]
    assert ours_ours == [{"abbr": "H", "name": "handshake", "result": "succeeded"},
                         {"abbr": "S", "name": "retry", "result": "succeeded"}]
    assert [x["result"] for x in ngtcp2_ours] == ["failed", None]
    (m,) = doc["measurements"][0]
    assert m == {"name": "goodput", "abbr": "G", "result": "succeeded",
                 "details": "9100 (± 141) kbps"}
    assert doc["measurements"][1][0]["result"] == "unsupported"


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))


def test_matrix_html_letters_link_to_folders() -> None:
    p = _Cells()
    p.feed(matrix_html(OUTS, [H, S, G], ["ours", "ngtcp2"], ["ours"], "t"))
    by = {(a.get("href"), a["data-result"]) for a in p.links}
    assert ("ours_ours/handshake/", "succeeded") in by
    assert ("ngtcp2_ours/handshake/", "failed") in by
    assert ("ours_ours/goodput/2/", "succeeded") in by
    assert (None, "notrun") in by  # not run: no folder to link
    failed = next(a for a in p.links if a["data-result"] == "failed")
    assert failed["title"] == "2 handshakes"


def test_tidy_rows_one_per_metric() -> None:
    from quicreality.interop.report import SAMPLE_KEYS, tidy_rows

    rows = tidy_rows(OUTS[4], "run1")
    assert [r["metric"] for r in rows] == ["elapsed", "goodput"]
    assert all(tuple(sorted(r)) == tuple(sorted(SAMPLE_KEYS)) for r in rows)
    assert rows[1]["value"] == 9000.0 and rows[1]["unit"] == "kbit/s" and rows[1]["source"] == "wire"
    (not_run,) = tidy_rows(OUTS[3], "run1")
    assert not_run["result"] is None and not_run["reason"] == "not run"


def test_markdown_table_rows_per_pair() -> None:
    from quicreality.interop.report import markdown_table

    doc = result_json(OUTS, [H, S, G], ["ours", "ngtcp2"], ["ours"], 1.0, 2.0, "x")
    lines = markdown_table(doc).splitlines()
    assert lines[0] == "| server | client | H | S | G |"
    assert lines[2] == "| ours | ours | ✓ | ✓ | 9100 (± 141) kbps |"
    assert lines[3] == "| ngtcp2 | ours | ✕ | – | ? |"
