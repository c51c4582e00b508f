"""PromQL answers of two runners compared series by series: process labels ignored, a small
absolute or relative difference agrees, a series on one side only agrees only at 0."""

from __future__ import annotations

from mesh.observe.compare import compare_answers, format_rows
from mesh.observe.query import result_from_api


def answer(*series: tuple[dict[str, str], float]) -> object:
    return result_from_api(
        {"resultType": "vector", "result": [{"metric": m, "value": [0, str(v)]} for m, v in series]}
    )


def test_series_match_without_process_labels_and_within_tolerance() -> None:
    sim = answer(
        ({"destination_version": "v1", "instance": "product-v1"}, 100.0),
        ({"destination_version": "v2", "instance": "product-v2"}, 0.5),
    )
    local = answer(
        ({"destination_version": "v1", "pod": "product-v1-0"}, 60.0),
        ({"destination_version": "v1", "pod": "product-v1-1"}, 48.0),
        ({"destination_version": "v2", "pod": "product-v2-0"}, 0.52),
        ({"destination_version": "v3", "pod": "product-v3-0"}, 0.0),
    )
    rows = compare_answers(0, "q", sim, local)  # type: ignore[arg-type]
    assert [(dict(r.labels)["destination_version"], r.agrees) for r in rows] == [
        ("v1", True),
        ("v2", True),
        ("v3", True),
    ]
    assert rows[0].b == 108.0
    worse = answer(({"destination_version": "v1"}, 130.0))
    (row, *_) = compare_answers(0, "q", sim, worse)  # type: ignore[arg-type]
    assert not row.agrees
    missing = compare_answers(0, "q", sim, answer())  # type: ignore[arg-type]
    assert [r.agrees for r in missing] == [False, False]
    assert "DIFFER" in format_rows(missing, "sim", "local")
