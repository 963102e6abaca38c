"""Property-based tests (hypothesis): the loaders and every registered check survive arbitrary text.

Loaders: any bytes in any supported extension either load or raise InputError (one line) - never
another exception. Checks: on arbitrary rows (unicode, control characters, empty-ish, duplicates,
numbers, huge and tiny label sets) every check returns findings that are JSON-serialisable and name
only row ids that exist.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st

from audit_agent.checks import REGISTRY
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.errors import InputError
from audit_agent.io.loader import load_dataset

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHECK_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])  # no shrinking: each example runs every check
WORDS = ["refund", "please", "my", "card", "was", "charged", "twice", "hi", "login", "code", "expired", "!!", "?",
         "order", "#1234", "Thanks", "for", "your", "help", "de", "naïve", "日本", "🙂", "\t", "\\n", '"', ","]
TEXT = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=80),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join),
    st.sampled_from(["", " ", "NaN", "null", "None", "0", "1.5", "<row>", "### system", "\x00", "a\r\nb", "\ufeff"]),
)
LABEL = st.one_of(st.sampled_from(["refund", "billing", "login", "Billing ", "BILLING", "", "0", "1"]),
                  st.text(min_size=1, max_size=12))


def _tmp_file(suffix: str, data: bytes) -> Path:
    handle = tempfile.NamedTemporaryFile(suffix=suffix, delete=False)  # noqa: SIM115 - hypothesis reuses no fixture
    with handle:
        handle.write(data)
    return Path(handle.name)


@SETTINGS
@given(data=st.binary(max_size=3000), suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".json", ".parquet"]))
def test_loader_never_crashes_on_arbitrary_bytes(data: bytes, suffix: str) -> None:
    path = _tmp_file(suffix, data)
    try:
        ds = load_dataset(path)
    except InputError as exc:
        assert "\n" not in str(exc) and path.name in str(exc)
    else:
        assert len(ds.frame) > 0 and ds.frame["text"].map(lambda t: isinstance(t, str)).all()
    finally:
        path.unlink()


def test_loader_round_trips_or_explains() -> None:
    """Rows written by pandas load back with the same non-empty texts (in order), or an InputError;
    and on these mostly ordinary rows the loader does load data (an InputError for everything would
    otherwise pass)."""
    outcomes: Counter[str] = Counter()

    @SETTINGS
    @given(rows=st.lists(st.tuples(TEXT, LABEL), min_size=1, max_size=30),
           fmt=st.sampled_from(["csv", "tsv", "jsonl", "json"]))
    @example(rows=[("refund please", "refund"), ("my card was charged twice", "billing")], fmt="csv")
    def round_trip(rows: list[tuple[str, str]], fmt: str) -> None:
        if fmt in ("csv", "tsv"):  # pandas leaves a bare \r unquoted: a line break to any CSV reader
            assume(not any("\r" in t or "\r" in lab for t, lab in rows))
        frame = pd.DataFrame(rows, columns=["text", "label"])
        path = _tmp_file(f".{fmt}", b"")
        if fmt in ("csv", "tsv"):
            frame.to_csv(path, index=False, sep="," if fmt == "csv" else "\t")
        else:
            frame.to_json(path, orient="records", lines=fmt == "jsonl", force_ascii=False)
        try:
            ds = load_dataset(path)
        except InputError as exc:
            assert "\n" not in str(exc)
            outcomes["error"] += 1
            return
        finally:
            path.unlink()
        outcomes["loaded"] += 1
        assert len(ds.frame) <= len(rows)
        assert set(ds.frame["id"].astype(str)) <= {str(i) for i in range(len(rows))}
        if fmt in ("jsonl", "json"):  # no delimiter or quoting ambiguity: exact round trip of kept rows
            assert ds.texts == [t for t, _ in rows if t.strip()]

    round_trip()
    assert outcomes["loaded"] >= 5, outcomes


def _context(rows: list[tuple[str, str]], eval_rows: list[tuple[str, str]] | None) -> AuditContext:
    def dataset(items: list[tuple[str, str]], name: str) -> Dataset:
        frame = pd.DataFrame({"id": range(len(items)), "text": [t for t, _ in items],
                              "label": [lab for _, lab in items]})
        return Dataset(Path(name), frame, kind="classification")

    config = AuditConfig.model_validate({"checks": {"cv_folds": 2, "min_class_count": 2, "template_min_rows": 2,
                                                    "leak_min_support": 2, "review_per_label": 3}})
    return AuditContext(train=dataset(rows, "train.csv"), config=config,
                        eval=dataset(eval_rows, "eval.csv") if eval_rows else None,
                        real=dataset(eval_rows[:5], "real.csv") if eval_rows else None)


def _assert_sane(name: str, ctx: AuditContext) -> list:
    """Run check `name` when it applies to `ctx` (else return []) and assert its findings are sane."""
    spec = REGISTRY[name]
    if spec.missing(ctx) is not None:
        return []
    try:
        found = spec.run(ctx)
        records = [f.model_dump(mode="json") for f in found]
    except Exception as exc:
        raise AssertionError(f"check {name}: {type(exc).__name__}: {exc}") from exc
    ids = {str(i) for ds in (ctx.train, ctx.eval, ctx.real) if ds is not None for i in ds.frame["id"]}
    for f, record in zip(found, records, strict=True):
        json.dumps(record)  # numpy scalars or sets in evidence would fail in model_dump or here
        assert {str(r) for r in f.rows} <= ids, (name, f.rows[:5])
        assert len(f.rows) <= 1000
    return found


CLEAN_TEXT = st.lists(st.sampled_from(WORDS[:19]), min_size=1, max_size=10).map(" ".join)


@CHECK_SETTINGS
@pytest.mark.slow
@example(rows=[("\x00", "billing"), ("hi card", "login"), (" ", "refund"), ("a\r\nb", "billing"),  # a fold
               ("\x01Z", "refund"), ("null", "login"), ("null", "refund")],  # whose rows have no features
         eval_rows=None)
@given(rows=st.lists(st.tuples(st.one_of(TEXT, CLEAN_TEXT), st.sampled_from(["refund", "billing", "login"])),
                     min_size=6, max_size=40),
       eval_rows=st.one_of(st.none(), st.lists(st.tuples(CLEAN_TEXT, st.sampled_from(["refund", "billing"])),
                                               min_size=5, max_size=12)))
def test_every_check_survives_arbitrary_text(rows: list[tuple[str, str]],
                                             eval_rows: list[tuple[str, str]] | None) -> None:
    rows = [(t, lab) for t, lab in rows if t.strip()]
    assume(len({lab for _, lab in rows}) >= 2 and len(rows) >= 6)
    ctx = _context(rows, eval_rows)
    for name in sorted(REGISTRY):
        _assert_sane(name, ctx)


def test_findings_serialise_when_ids_are_row_positions() -> None:
    """Without an id column the ids are row positions (numpy int64 in the frame): every finding must
    still be JSON-serialisable. Identical texts under two labels make label_overlap report the pair."""
    base = ["refund my order please", "my card was charged twice", "the login code expired",
            "where is my parcel", "cancel my plan now"]
    rows = []
    for i in range(60):
        text = f"{base[i % 5]} {'again' * (i % 3)}".strip()
        rows.append((text, ["refund", "billing", "login", "refund", "billing"][i % 5]))
    rows += [("refund or charge I do not know", "refund"), ("refund or charge I do not know", "billing")] * 4
    ctx = _context(rows, None)
    assert ctx.train.frame["id"].dtype.kind == "i"
    found = {name: _assert_sane(name, ctx) for name in sorted(REGISTRY)}
    overlap = found["label_overlap"]
    assert any(set(f.labels) == {"billing", "refund"} and f.evidence["identical_text_conflicts"]
               for f in overlap), [(f.labels, f.message) for f in overlap]
    assert found["exact_duplicate"] and found["conflicting_labels"]  # int ids through the duplicate checks too


def test_classifier_checks_survive_rows_without_shared_terms() -> None:
    rows = [("ab", "refund"), ("cd", "billing"), ("ef", "refund"), ("gh", "billing"), ("ij", "refund"),
            ("kl", "billing")]
    ctx = _context(rows, [("mn", "refund"), ("op", "billing"), ("qr", "refund"), ("st", "billing"),
                          ("uv", "refund")])
    issues = _assert_sane("label_issue", ctx)
    assert [f for f in issues if f.evidence.summary or "flagged" in f.evidence], "label_issue must report"
    (pilot,) = _assert_sane("pilot_gap", ctx)  # the pilot model is fitted and scored, not skipped
    assert pilot.evidence["sets"]["eval"]["n"] == 5 and pilot.evidence["sets"]["real"]["n"] == 5
