"""Match the findings of two audits: which were fixed, which are new, which persist.

A finding's id is a hash of its check, split, rows, labels and message, so it only survives a rerun when
nothing about it changed. Findings whose id changed are matched, within one check and split, by:
1. anchor: what the finding is about, as its kind words it (`FindingKind.subject`: a phrase, a frame,
   a coverage bucket, a label pair; or that it is the check's summary), when exactly one finding on
   each side has it;
2. rows: the overlap of their row sets (Jaccard >= 0.5, best pairs first), with rows compared by a key
   that survives row moves (the id when both versions have an id column, else the text hash);
3. only one: the one remaining finding without rows on each side (e.g. pilot_gap, eval_too_clean).
What is left is fixed (old side) or new (new side)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from audit_agent.checks import KINDS
from audit_agent.findings import Finding

MIN_OVERLAP = 0.5
How = Literal["id", "anchor", "rows", "only one"]
SEVERITIES = ("high", "medium", "low", "info")


class FindingRef(BaseModel):
    id: str
    check: str
    severity: str
    split: str
    rows: int
    message: str

    @classmethod
    def of(cls, f: Finding) -> FindingRef:
        return cls(id=f.id, check=f.check, severity=f.severity.value, split=f.split, rows=len(f.rows),
                   message=f.message)


class MatchedFinding(BaseModel):
    old: FindingRef
    new: FindingRef
    how: How
    overlap: float | None = None


class CheckCounts(BaseModel):
    check: str
    before: int
    after: int
    fixed: int
    new: int
    persisting: int


class FindingsDiff(BaseModel):
    fixed: list[FindingRef]
    new: list[FindingRef]
    persisting: list[MatchedFinding]
    per_check: list[CheckCounts]
    matched_by: dict[str, int]
    fixed_by_severity: dict[str, int]
    new_by_severity: dict[str, int]


def anchor(f: Finding) -> tuple[tuple[str, Any], ...]:
    """What the finding is about (`FindingKind.subject`; empty when only its rows say it)."""
    kind = KINDS.get(f.check)
    subject = kind.subject(f) if kind is not None else None
    return (("subject", subject),) if subject is not None else ()


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


class _Group:
    """Unmatched findings of one check and split, on both sides."""

    def __init__(self) -> None:
        self.old: list[Finding] = []
        self.new: list[Finding] = []

    def take(self, o: Finding, n: Finding) -> None:
        self.old.remove(o)
        self.new.remove(n)


def _by_anchor(g: _Group) -> list[tuple[Finding, Finding, float | None]]:
    old_a: dict[tuple[Any, ...], list[Finding]] = defaultdict(list)
    new_a: dict[tuple[Any, ...], list[Finding]] = defaultdict(list)
    for f in g.old:
        old_a[anchor(f)].append(f)
    for f in g.new:
        new_a[anchor(f)].append(f)
    return [(old_a[k][0], new_a[k][0], None) for k in old_a
            if k and len(old_a[k]) == 1 and len(new_a.get(k, [])) == 1]


def _by_rows(g: _Group, old_key: Callable[[str], str], new_key: Callable[[str], str], min_overlap: float
             ) -> list[tuple[Finding, Finding, float | None]]:
    old_rows = {id(f): {old_key(str(r)) for r in f.rows} for f in g.old}
    new_rows = {id(f): {new_key(str(r)) for r in f.rows} for f in g.new}
    scored = sorted(((_jaccard(old_rows[id(o)], new_rows[id(n)]), i, j, o, n)
                     for i, o in enumerate(g.old) if o.rows for j, n in enumerate(g.new) if n.rows),
                    key=lambda t: (-t[0], t[1], t[2]))
    used_o: set[int] = set()
    used_n: set[int] = set()
    out: list[tuple[Finding, Finding, float | None]] = []
    for score, i, j, o, n in scored:
        if score < min_overlap:
            break
        if i in used_o or j in used_n:
            continue
        used_o.add(i)
        used_n.add(j)
        out.append((o, n, round(score, 4)))
    return out


def _match_group(g: _Group, old_key: Callable[[str], str], new_key: Callable[[str], str], min_overlap: float
                 ) -> list[MatchedFinding]:
    """The anchor, rows and only-one passes over one check and split, in that order."""
    out: list[MatchedFinding] = []

    def take(how: How, pairs: list[tuple[Finding, Finding, float | None]]) -> None:
        for o, n, overlap in pairs:
            g.take(o, n)
            out.append(MatchedFinding(old=FindingRef.of(o), new=FindingRef.of(n), how=how, overlap=overlap))

    take("anchor", _by_anchor(g))
    take("rows", _by_rows(g, old_key, new_key, min_overlap))
    if len(g.old) == 1 and len(g.new) == 1 and not g.old[0].rows and not g.new[0].rows:
        take("only one", [(g.old[0], g.new[0], None)])
    return out


def match_findings(old: Sequence[Finding], new: Sequence[Finding], *, old_key: Callable[[str], str] = str,
                   new_key: Callable[[str], str] = str, min_overlap: float = MIN_OVERLAP) -> FindingsDiff:
    """Fixed, new and persisting findings; `old_key`/`new_key` map a row id of each side to the key rows
    are compared by (see the module docstring)."""
    matched: list[MatchedFinding] = []
    new_ids = {f.id for f in new}
    old_ids = {f.id for f in old}
    by_id = {f.id: f for f in new}
    groups: dict[tuple[str, str], _Group] = defaultdict(_Group)
    for f in old:
        if f.id in new_ids:
            matched.append(MatchedFinding(old=FindingRef.of(f), new=FindingRef.of(by_id[f.id]), how="id"))
        else:
            groups[(f.check, f.split)].old.append(f)
    for f in new:
        if f.id not in old_ids:
            groups[(f.check, f.split)].new.append(f)
    for g in groups.values():
        matched += _match_group(g, old_key, new_key, min_overlap)
    fixed = [FindingRef.of(f) for g in groups.values() for f in g.old]
    added = [FindingRef.of(f) for g in groups.values() for f in g.new]
    return FindingsDiff(fixed=fixed, new=added, persisting=matched,
                        per_check=_per_check(old, new, fixed, added, matched),
                        matched_by={h: sum(m.how == h for m in matched) for h in ("id", "anchor", "rows", "only one")},
                        fixed_by_severity={s: sum(f.severity == s for f in fixed) for s in SEVERITIES},
                        new_by_severity={s: sum(f.severity == s for f in added) for s in SEVERITIES})


def _per_check(old: Sequence[Finding], new: Sequence[Finding], fixed: list[FindingRef], added: list[FindingRef],
               matched: list[MatchedFinding]) -> list[CheckCounts]:
    checks = sorted({f.check for f in old} | {f.check for f in new})
    return [CheckCounts(check=c, before=sum(f.check == c for f in old), after=sum(f.check == c for f in new),
                        fixed=sum(f.check == c for f in fixed), new=sum(f.check == c for f in added),
                        persisting=sum(m.old.check == c for m in matched)) for c in checks]
