"""The review cycle on the bundled example, through the real CLI: audit, apply review decisions that remove
the planted duplicates and fix the planted wrong labels, audit the new version, diff the two audits, and
check that the diff counts exactly what was changed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "fixtures" / "support"
SIDES = ["--eval", str(SUPPORT / "eval.csv"), "--real", str(SUPPORT / "real.csv"), "--guide", str(SUPPORT / "guide.md"),
         "--no-llm"]
PARAPHRASE = "refund pls, charged for a jacket i sent back weeks ago"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "audit_agent", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def findings(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "findings.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_apply_run_diff_counts_what_was_changed(tmp_path: Path) -> None:
    planted = json.loads((SUPPORT / "planted.json").read_text())
    train = pd.read_csv(SUPPORT / "train.csv", dtype=str, keep_default_na=False).set_index("id")
    drops = [d["id"] for d in planted["exact_duplicate"]]
    flips = {d["id"]: d["true"] for d in planted["label_flip"]}
    hard = [d["id"] for d in planted["ambiguous"] if d["id"] not in flips and d["id"] not in drops]
    by_reviewer, by_candidates = dict(list(flips.items())[:12]), dict(list(flips.items())[12:])

    def row(rid: str, **fields: str) -> dict[str, str]:
        return {"id": rid, "text": train.at[rid, "text"], "label": train.at[rid, "label"], "reviewer": "ana", **fields}

    pd.DataFrame([row(r, decision="drop", hard="false", note="planted copy") for r in drops]
                 + [row(r, decision="relabel", new_label=lab, hard="false") for r, lab in by_reviewer.items()]
                 + [row(r, decision="hard", hard="true", note="needs mind reading") for r in hard]
                 ).to_csv(tmp_path / "review-ana.csv", index=False)
    pd.DataFrame([row(r, proposed_label=lab, accept="yes") for r, lab in by_candidates.items()]
                 ).to_csv(tmp_path / "relabel_candidates.csv", index=False)
    pd.DataFrame([{"candidate_id": "t0027-p1", "source_id": "t0027", "source_text": train.at["t0027", "text"],
                   "candidate": PARAPHRASE, "label": "refund_request", "status": "accepted"}]
                 ).to_csv(tmp_path / "paraphrases.csv", index=False)

    cli("run", str(SUPPORT / "train.csv"), *SIDES, "--out", str(tmp_path / "audit1"), cwd=tmp_path)
    v2 = tmp_path / "v2" / "train.csv"
    cli("apply", str(SUPPORT / "train.csv"), "--decisions", str(tmp_path / "review-ana.csv"), "--decisions",
        str(tmp_path / "relabel_candidates.csv"), "--decisions", str(tmp_path / "paraphrases.csv"), "--out", str(v2),
        cwd=tmp_path)
    cli("run", str(v2), *SIDES, "--out", str(tmp_path / "audit2"), cwd=tmp_path)
    proc = cli("diff", str(tmp_path / "audit1"), str(tmp_path / "audit2"), "--out", str(tmp_path / "diff"),
               cwd=tmp_path)
    diff = json.loads((tmp_path / "diff" / "diff.json").read_text())

    # the new version: originals' columns plus `hard`, the changes the decisions asked for
    new = pd.read_csv(v2, dtype=str, keep_default_na=False)
    assert list(new.columns) == ["id", "text", "label", "hard"]
    assert sorted(new.loc[new["hard"] == "true", "id"]) == sorted(hard)
    changelog = pd.read_csv(tmp_path / "v2" / "changelog.csv", dtype=str, keep_default_na=False)
    assert Counter(changelog["action"]) == {"drop": len(drops), "relabel": len(flips), "hard": len(hard), "add": 1}

    # rows and label counts
    rows = diff["rows"]
    assert (rows["matched_by"], rows["removed"], rows["relabelled"], rows["added"], rows["edited"]) == (
        "id", len(drops), len(flips), 1, 0)
    expected = Counter(train["label"])
    for rid in drops:
        expected[train.at[rid, "label"]] -= 1
    for rid, lab in flips.items():
        expected[train.at[rid, "label"]] -= 1
        expected[lab] += 1
    expected["refund_request"] += 1
    assert {s["name"]: s["after"] for s in diff["labels"]} == {k: float(v) for k, v in expected.items()}

    # findings: every exact-duplicate finding naming a dropped row is fixed, no other
    old = findings(tmp_path / "audit1")
    dup_pairs = {f["id"] for f in old if f["check"] == "exact_duplicate" and set(f["rows"]) & set(drops)}
    assert len(dup_pairs) == len(drops)
    fixed = {f["id"] for f in diff["findings"]["fixed"]}
    per_check = {c["check"]: c for c in diff["findings"]["per_check"]}
    assert {i for i in fixed if i.startswith("exact_duplicate-")} == dup_pairs
    assert per_check["exact_duplicate"]["fixed"] == len(drops) and per_check["exact_duplicate"]["new"] == 0
    # every label_issue finding on a row whose label was fixed is gone, and none of those rows is flagged again
    on_flips = {f["id"] for f in old if f["check"] == "label_issue" and len(f["rows"]) == 1 and f["rows"][0] in flips}
    assert on_flips and on_flips <= fixed
    again = [f for f in findings(tmp_path / "audit2") if f["check"] == "label_issue" and len(f["rows"]) == 1]
    assert not {f["rows"][0] for f in again} & set(flips)
    assert "fixed" in proc.stdout and (tmp_path / "diff" / "diff.md").exists()
