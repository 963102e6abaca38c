"""review.html without a browser: safe embedding, CSP hashes that match the inlined code, and rows
built from the real checks on the bundled example."""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path

import pytest

from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.features.nearest import nearest_rows
from audit_agent.io.loader import load_dataset
from audit_agent.report.review_page import (
    REVIEW_CSV_COLUMNS,
    csp_hash,
    json_for_script,
    render_review_page,
    write_review_page,
)
from audit_agent.review.page_rows import Neighbour, ReviewMeta, ReviewRow, review_meta_from, review_rows_from
from tests.review_page_fixture import (
    HOSTILE_LABEL,
    HOSTILE_ROWS,
    SUPPORT_TRAIN,
    ReviewPageFixture,
    build_review_page,
)

HOSTILE = ["</script><script>alert(1)</script>", "<!--", "<img src=x onerror=alert(1)>", "a\u2028b\u2029c & d",
           "</SCRIPT >", "]]>", "\"'\\"]


def _scripts(html: str) -> list[tuple[str, str]]:
    return re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S | re.I)


@pytest.fixture(scope="module")
def fixture_page(tmp_path_factory: pytest.TempPathFactory) -> ReviewPageFixture:
    return build_review_page(tmp_path_factory.mktemp("review"))


def test_json_for_script_escapes_everything_that_could_end_the_element() -> None:
    text = json_for_script({"rows": HOSTILE})
    assert not set(text) & {"<", ">", "&", "\u2028", "\u2029"}
    assert json.loads(text) == {"rows": HOSTILE}


def test_hostile_rows_stay_data_and_csp_allows_only_the_page_code() -> None:
    rows = [ReviewRow(id=f"x{i}", text=t, label=HOSTILE[(i + 2) % len(HOSTILE)], notes=[t],
                      neighbours=[Neighbour("n", t, "<b>", 0.5)]) for i, t in enumerate(HOSTILE)]
    meta = ReviewMeta(audit_id="abc123", dataset="<i>train</i>.csv")
    html = render_review_page(rows, ["<b>", "ok"], meta)
    scripts = _scripts(html)
    assert len(scripts) == 2 and html.lower().count("<script") == 2 and html.lower().count("</script") == 2
    (data_attrs, data), (code_attrs, code) = scripts
    assert 'type="application/json"' in data_attrs and code_attrs == ""
    payload = json.loads(data)
    assert [r["text"] for r in payload["rows"]] == HOSTILE
    assert payload["rows"][0]["neighbours"][0] == {"id": "n", "text": HOSTILE[0], "label": "<b>", "similarity": 0.5}
    assert payload["columns"] == list(REVIEW_CSV_COLUMNS) and payload["labels"] == ["<b>", "ok"]
    assert "<i>train</i>" not in html and "&lt;i&gt;train&lt;/i&gt;.csv" in html
    found = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    style = re.search(r"<style>(.*?)</style>", html, flags=re.S)
    assert found is not None and style is not None
    csp = html_lib.unescape(found.group(1))
    assert f"script-src {csp_hash(code)};" in csp and f"style-src {csp_hash(style.group(1))};" in csp
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert not re.search(r"(src|href)=\"(https?:)?//", html)


def test_rows_follow_the_sample_with_neighbours_and_notes(fixture_page: ReviewPageFixture) -> None:
    fx = fixture_page
    sample = next(f for f in fx.findings if f.check == "review_sample")
    assert [r.id for r in fx.rows] == [str(i) for i in sample.evidence["row_ids"]]
    frame = load_dataset(fx.path.parent / "train.csv", id_col="id").frame.set_index("id")
    for row in fx.rows:
        assert (row.text, row.label) == (frame.at[row.id, "text"], frame.at[row.id, "label"])
        assert 1 <= len(row.neighbours) <= 3 and row.id not in {n.id for n in row.neighbours}
        sims = [n.similarity for n in row.neighbours]
        assert sims == sorted(sims, reverse=True) and all(0 < s <= 1.0001 for s in sims)
        for n in row.neighbours:
            assert (n.text, n.label) == (frame.at[n.id, "text"], frame.at[n.id, "label"])
    assert fx.rows[0].notes[0].startswith("Judge (unverified claim)") and "two problems" in fx.rows[0].notes[0]
    flagged = {str(r) for f in fx.findings if f.check == "label_issue" and len(f.rows) == 1 for r in f.rows}
    noted = [r for r in fx.rows if r.id in flagged]
    assert noted and all(any(n.startswith("label_issue (") for n in r.notes) for r in noted)
    assert {r.id for r in fx.rows if r.label == HOSTILE_LABEL} == {rid for rid, _, _ in HOSTILE_ROWS}
    assert HOSTILE_LABEL in fx.labels


def test_audit_id_follows_the_sample(fixture_page: ReviewPageFixture) -> None:
    fx = fixture_page
    ctx = AuditContext(train=load_dataset(fx.path.parent / "train.csv", id_col="id"), config=AuditConfig())
    assert review_meta_from(ctx, fx.rows, fx.findings).audit_id == fx.meta.audit_id
    assert review_meta_from(ctx, fx.rows[1:], fx.findings).audit_id != fx.meta.audit_id
    assert re.fullmatch(r"[0-9a-f]{12}", fx.meta.audit_id)


def test_no_review_sample_no_page(tmp_path: Path) -> None:
    ctx = AuditContext(train=load_dataset(SUPPORT_TRAIN, id_col="id"), config=AuditConfig())
    assert review_rows_from(ctx, []) == []
    assert write_review_page(ctx, [], tmp_path) is None and not (tmp_path / "review.html").exists()


def test_nearest_rows_ranks_by_similarity_and_skips_itself() -> None:
    texts = ["refund my order please", "please refund my order now", "reset my password",
             "refund my order please", "zzz"]
    near = nearest_rows(texts, [0, 4], k=2)
    assert [p for p, _ in near[0]] == [3, 1] and near[0][0][1] == pytest.approx(1.0, abs=1e-3)
    assert near[0][1][1] < near[0][0][1]
    assert near[1] == []
    assert nearest_rows(texts, [2], k=0) == [[]]


def test_rare_ngram_search_finds_the_exact_neighbours_on_real_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    import audit_agent.features.nearest as nearest

    texts = load_dataset(SUPPORT_TRAIN, id_col="id").frame["text"].tolist()
    queries = list(range(0, len(texts), 10))
    exact = nearest_rows(texts, queries, k=3)
    monkeypatch.setattr(nearest, "EXACT_ROWS", 0)
    approx = nearest_rows(texts, queries, k=3)
    # (position, similarity) pairs: the similarities shown are exact cosines however candidates were found
    found = sum(len(set(a) & set(e)) for a, e in zip(approx, exact, strict=True))
    assert found >= 0.9 * sum(len(e) for e in exact)
    for q, a in zip(queries, approx, strict=True):
        assert a == sorted(a, key=lambda t: (-t[1], t[0])) and q not in {c for c, _ in a}


def test_neighbours_on_a_large_set_come_from_a_bounded_sample(fixture_page: ReviewPageFixture) -> None:
    fx = fixture_page
    ctx = AuditContext(train=load_dataset(fx.path.parent / "train.csv", id_col="id"), config=AuditConfig())
    full = review_rows_from(ctx, fx.findings)
    pool = 40
    sampled = review_rows_from(ctx, fx.findings, pool=pool)
    assert [r.id for r in sampled] == [r.id for r in full] and len(ctx.train) > pool + len(full)
    shown = {n.id for r in sampled for n in r.neighbours}
    sampled_ids = {r.id for r in full}
    assert len(shown - sampled_ids) <= pool  # neighbours come from the pool (plus the reviewed rows)
    assert shown != {n.id for r in full for n in r.neighbours}  # a smaller pool finds other neighbours
    by_id = dict(zip(ctx.train.frame["id"].astype(str), ctx.train.frame["text"].astype(str), strict=False))
    assert all(by_id[n.id].startswith(n.text[:50]) for r in sampled for n in r.neighbours)  # ids map back
