"""Grading what users look at: requests selected by header and by user, the end-to-end outcome
of a request at its caller (degraded pages included), and edge success that counts 4xx and
Envoy's local replies as failures where they happen."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mesh.checks import Verdict, evaluate, outcome
from mesh.diagnostics import DiagnosticError
from mesh.lesson import Expectation, Selector, load_lesson
from mesh.metrics import edge_stats
from mesh.model.common import FrozenMap
from mesh.records import Reporter, RequestRecord

ROOT = Path(__file__).resolve().parents[2]


def _hop(
    request_id: str, client: str, service: str, *, code: int = 200, start: float = 0.0,
    duration_ms: float = 10.0, version: str = "v1", user: str = "", flags: tuple[str, ...] = (),
    reporter: Reporter = Reporter.SOURCE, authority: str = "",
) -> RequestRecord:  # fmt: skip
    """One Bookinfo hop as the client's sidecar (or, for ``outside``, the server's) logged it."""
    outside = client == "outside"
    return RequestRecord(
        start_time=start,
        duration_ms=duration_ms,
        reporter=Reporter.DESTINATION if outside else reporter,
        source_workload="unknown" if outside else f"{client}-v1",
        source_namespace="default",
        source_principal="",
        source_app="" if outside else client,
        destination_service=f"{service}.default.svc.cluster.local",
        destination_workload=f"{service}-{version}",
        destination_namespace="default",
        destination_version=version,
        authority=authority or f"{service}:9080",
        path=f"/{service}/0",
        response_code=code,
        response_flags=flags,
        request_id=request_id,
        request_headers=(("end-user", user),) if user else (),
    )


def _page(
    rid: str, *, user: str = "", reviews: str = "v1", reviews_code: int = 200,
    reviews_flags: tuple[str, ...] = (), page_code: int = 200, page_ms: float = 30.0,
) -> list[RequestRecord]:  # fmt: skip
    """One /productpage request from outside: the page, then details and reviews, with the
    ``end-user`` header productpage derived from the login session on its outbound calls."""
    return [
        _hop(rid, "outside", "productpage", code=page_code, duration_ms=page_ms),
        _hop(rid, "productpage", "details", start=0.001, user=user),
        _hop(rid, "productpage", "reviews", start=0.005, version=reviews, user=user,
             code=reviews_code, flags=reviews_flags),
    ]  # fmt: skip


def test_local_replies_and_4xx_are_failures_on_their_edge() -> None:
    """A 404 NR (no route) and a 403 from RBAC are Envoy answering instead of the app: the edge
    shows them as failures, not as 100 % success (5xx stays Istio's dashboards' reading)."""
    records = [_hop("a", "productpage", "reviews", code=404, flags=("NR",))] * 3 + [
        _hop("b", "productpage", "reviews", code=403),
        _hop("c", "productpage", "reviews"),
    ]
    (row,) = edge_stats(records, 1.0)
    assert math.isclose(row.success_rate, 0.2)
    result = evaluate(
        Expectation(success_rate=Selector(edge="productpage->reviews"), at_least=0.9), records, 1.0
    )
    assert math.isclose(result.value, 0.2)
    assert result.verdict is Verdict.FAIL
    assert not any(r.ok for r in records[:4])
    assert all(r.server_ok for r in records[:4])


def test_a_header_selects_the_hops_that_carried_it() -> None:
    records = (
        _page("1", user="jason", reviews="v2")
        + _page("2", reviews="v1")
        + _page("3", user="jason", reviews="v2")
    )
    exp = Expectation(
        share=Selector(
            edge="productpage->reviews", header=FrozenMap({"end-user": "jason"}), version="v2"
        ),
        at_least=1.0,
    )
    result = evaluate(exp, records, 1.0)
    assert (result.value, result.samples, result.verdict) == (1.0, 2, Verdict.PASS)


def test_a_user_is_every_hop_of_their_requests_including_the_page_with_only_a_cookie() -> None:
    """The page request carried a session cookie, not ``end-user``; it shares its
    ``x-request-id`` with the calls productpage made for jason, so it is jason's too."""
    records = (
        _page("1", user="jason", page_ms=40)
        + _page("2", page_ms=20)
        + _page("3", user="jason", page_ms=60)
    )
    page = evaluate(
        Expectation(count=Selector(edge="outside->productpage", user="jason"), at_least=1),
        records,
        1.0,
    )
    assert page.value == 2
    mean = evaluate(
        Expectation(
            latency_mean_ms=Selector(edge="outside->productpage", user="jason"), at_least=0
        ),
        records,
        1.0,
    )
    assert math.isclose(mean.value, 50.0)
    others = evaluate(
        Expectation(count=Selector(service="reviews", user="nobody"), at_least=1), records, 1.0
    )
    assert (others.value, others.verdict) == (0, Verdict.FAIL)


def test_a_failed_call_logged_after_its_pages_end_at_millisecond_resolution_still_counts() -> None:
    """Envoy's ``%START_TIME%`` has whole milliseconds: a page started at .9 ms logs .0, so the
    page's end computed from it can come up to 1 ms before the ratings call it waited for
    (2 of 24 of jason's pages read "ok" on local in CI that way)."""
    page = _hop("1", "outside", "productpage", start=0.100, duration_ms=3.2)
    ratings = _hop("1", "reviews", "ratings", start=0.1035, code=500, flags=("FI",))
    assert outcome(page, [page, ratings]) == "degraded"
    later = _hop("1", "reviews", "ratings", start=0.1045, code=500, flags=("FI",))
    assert outcome(page, [page, later]) == "ok"


def test_a_page_answered_200_after_reviews_failed_is_degraded_not_ok() -> None:
    """productpage gave up on reviews (the app's own timeout: Envoy logs ``DC`` with no status)
    and rendered the page without them: 200 at the caller, but degraded."""
    records = (
        _page("1", reviews_code=0, reviews_flags=("DC",), page_ms=6000)
        + _page("2", reviews_code=503, reviews_flags=("UF", "URX"), page_ms=40)
        + _page("3")
        + _page("4", page_code=500)
    )
    by_id: dict[str, list[RequestRecord]] = {}
    for r in records:
        by_id.setdefault(r.request_id, []).append(r)
    pages = [r for r in records if r.destination_service.startswith("productpage")]
    assert [outcome(p, by_id[p.request_id]) for p in pages] == [
        "degraded",
        "degraded",
        "ok",
        "failed",
    ]
    degraded = evaluate(
        Expectation(rate=Selector(edge="outside->productpage", outcome="degraded"), equals=0.5),
        records,
        1.0,
    )
    assert (degraded.value, degraded.verdict) == (0.5, Verdict.PASS)
    slow = evaluate(
        Expectation(
            latency_p50_ms=Selector(edge="outside->productpage", outcome="degraded"), at_least=0
        ),
        records,
        1.0,
    )
    assert math.isclose(slow.value, 3020.0)
    success = evaluate(
        Expectation(success_rate=Selector(edge="outside->productpage"), at_least=0), records, 1.0
    )
    assert math.isclose(success.value, 0.75)


def test_a_failed_sibling_call_does_not_degrade_another_call_nor_does_a_mirror() -> None:
    """details failing is not part of the reviews call (same caller, a sibling); a mirrored copy
    failing is nobody's answer."""
    rid = "1"
    records = [
        _hop(rid, "outside", "productpage", duration_ms=50),
        _hop(rid, "productpage", "details", code=503, start=0.001),
        _hop(rid, "productpage", "reviews", start=0.005),
        _hop("2", "outside", "productpage", duration_ms=50),
        _hop("2", "productpage", "reviews", code=503, start=0.002, authority="reviews-shadow:9080"),
    ]
    reviews = records[2]
    assert outcome(reviews, records) == "ok"
    assert outcome(records[0], records) == "degraded"
    assert outcome(records[3], records[3:]) == "ok"


def test_records_keep_their_logged_headers_through_json() -> None:
    (record,) = _page("1", user="jason")[1:2]
    again = RequestRecord.from_json(record.to_json())
    assert again == record
    assert again.header("end-user") == "jason"


def _lesson(tmp_path: Path, selector: str) -> Path:
    folder = tmp_path / "lesson"
    folder.mkdir()
    (folder / "lesson.yaml").write_text(
        "title: t\napp: bookinfo\ntraffic: {to: productpage, count: 10}\n"
        f"steps:\n  - name: s\n    expect:\n      - count: {selector}\n        at_least: 1\n"
    )
    return folder


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("{service: reviews, header: {x-team: blue}}", 'header "x-team" is not in the access log'),
        ("{service: reviews, outcome: broken}", 'invalid outcome "broken"'),
    ],
)
def test_selectors_the_records_cannot_answer_are_load_errors(
    tmp_path: Path, selector: str, message: str
) -> None:
    with pytest.raises(DiagnosticError) as err:
        load_lesson(_lesson(tmp_path, selector))
    text = "\n".join(d.render() for d in err.value.diagnostics)
    assert message in text
    assert "MPY4001" in text


def test_header_user_and_outcome_selectors_load(tmp_path: Path) -> None:
    lesson = load_lesson(
        _lesson(tmp_path, "{service: reviews, header: {end-user: jason}, user: jason, outcome: ok}")
    )
    sel = lesson.spec.steps[0].expect[0].selector
    assert (dict(sel.header), sel.user, sel.outcome) == ({"end-user": "jason"}, "jason", "ok")
