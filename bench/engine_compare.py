"""Compare the findings of two audit runs of the same data (e.g. `--engine local` and `--engine ray`):
exact checks must match finding for finding; near duplicates and label issues are compared by the
rows they name (Jaccard overlap).

    python bench/engine_compare.py audit_local audit_ray
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

EXACT = ("exact_duplicate", "repeated_opening", "repeated_ending", "class_balance")
ROWS = ("near_duplicate", "conflicting_labels", "label_issue", "contamination", "real_in_train")


def load(folder: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in (folder / "findings.jsonl").read_text(encoding="utf-8").splitlines():
        f = json.loads(line)
        out[f["check"]].append(f)
    return out


def _content(f: dict[str, Any]) -> str:
    return json.dumps({k: f[k] for k in ("severity", "rows", "labels", "message", "evidence", "split")}, sort_keys=True)


def _rows(findings: list[dict[str, Any]]) -> set[str]:
    """Rows named by a check: drop lists of duplicate checks, every row of the others."""
    rows: set[str] = set()
    for f in findings:
        drop = f["evidence"].get("drop")
        values = drop if isinstance(drop, list) else f["rows"]
        if f["evidence"].get("summary") and f["check"] == "label_issue":
            continue
        rows.update(str(r) for r in values)
    return rows


def compare(a: Path, b: Path) -> dict[str, Any]:
    fa, fb = load(a), load(b)
    result: dict[str, Any] = {}
    for check in EXACT:
        ca, cb = sorted(map(_content, fa.get(check, []))), sorted(map(_content, fb.get(check, [])))
        result[check] = {"findings": [len(ca), len(cb)], "identical": ca == cb,
                         "differing": len(set(ca) ^ set(cb))}
    for check in ROWS:
        ra, rb = _rows(fa.get(check, [])), _rows(fb.get(check, []))
        union = ra | rb
        result[check] = {"rows": [len(ra), len(rb)], "jaccard": round(len(ra & rb) / len(union), 4) if union else 1.0}
    issues = [next((f["evidence"] for f in x.get("label_issue", []) if "flagged" in f["evidence"]), {}) for x in (fa, fb)]
    result["label_issue"]["flagged"] = [i.get("flagged") for i in issues]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args()
    print(json.dumps(compare(args.a, args.b), indent=2))


if __name__ == "__main__":
    main()
