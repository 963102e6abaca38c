"""Which rows the judge sees: per label (stratified), suspects named by deterministic checks first,
random control rows mixed in, and follow-up rows where flagged verdicts cluster."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from audit_agent.checks import KINDS
from audit_agent.config import SampleConfig
from audit_agent.findings import Finding

PickKind = Literal["suspect", "control", "followup"]


@dataclass(frozen=True)
class Pick:
    """One row chosen for the judge, and why."""

    row_id: str
    label: str
    kind: PickKind
    reason: str
    checks: tuple[str, ...] = ()
    score: int = 0


@dataclass
class Suspect:
    score: int
    checks: list[str] = field(default_factory=list)


def suspects_from_findings(findings: Iterable[Finding], known_ids: Mapping[str, int]) -> dict[str, Suspect]:
    """Training rows named by findings of label-suspect kinds (`FindingKind.suspect_priority`), scored
    by severity then that priority."""
    out: dict[str, Suspect] = {}
    for f in findings:
        kind = KINDS.get(f.check)
        priority = kind.suspect_priority if kind is not None else None
        if priority is None or f.split != "train" or f.source != "check":
            continue
        score = f.severity.rank * 10 + priority
        for rid in f.rows:
            key = str(rid)
            if key not in known_ids:
                continue
            s = out.setdefault(key, Suspect(score))
            s.score = max(s.score, score)
            if f.check not in s.checks:
                s.checks.append(f.check)
    return out


class LabelIndex:
    """Row ids grouped by label, with random draws that skip rows already taken."""

    def __init__(self, ids: Sequence[str], labels: Sequence[str | None], seed: int) -> None:
        """`ids`/`labels` aligned with the training frame (positions are frame positions);
        rows without a label are never drawn."""
        self.ids = list(ids)
        self.labels = list(labels)
        self.id_pos: dict[str, int] = {rid: pos for pos, rid in enumerate(self.ids)}
        self.rng = np.random.default_rng(seed)
        groups: dict[str, list[int]] = defaultdict(list)
        for pos, lab in enumerate(self.labels):
            if lab is not None:
                groups[lab].append(pos)
        self.positions: dict[str, np.ndarray] = {lab: np.asarray(p) for lab, p in groups.items()}

    def label_of(self, rid: str) -> str:
        return str(self.labels[self.id_pos[rid]])

    @property
    def label_set(self) -> list[str]:
        return sorted(self.positions)

    def random_rows(self, label: str, n: int, taken: set[str]) -> list[str]:
        """Up to `n` random row ids of `label` not in `taken`."""
        if n <= 0:
            return []
        pool = self.positions.get(label, np.asarray([], dtype=int))
        out: list[str] = []
        for pos in self.rng.permutation(pool)[: n + len(taken)]:
            rid = self.ids[int(pos)]
            if rid not in taken:
                out.append(rid)
                if len(out) == n:
                    break
        return out


def _interleave(first: list[Pick], second: list[Pick]) -> list[Pick]:
    """Spread `second` evenly through `first` (which leads), so a budget cut keeps the same mix."""
    keyed = [(i / len(first), 0, p) for i, p in enumerate(first)]
    keyed += [((i + 1) / (len(second) + 1), 1, p) for i, p in enumerate(second)]
    return [p for _, _, p in sorted(keyed, key=lambda k: (k[0], k[1]))]


def plan_first_round(index: LabelIndex, suspects: Mapping[str, Suspect], cfg: SampleConfig) -> list[Pick]:
    """`per_label` rows per label: a `control_share` of random rows, the rest suspects (best first),
    topped up with random rows where a label has too few suspects. Suspects lead the list, controls
    are spread through it."""
    labels = index.label_set
    per_label = cfg.per_label
    if per_label == 0 or not labels:
        return []
    total = per_label * len(labels)
    n_control = round(total * cfg.control_share) if cfg.suspects_first else total
    control_slots = dict.fromkeys(labels, 0)
    order = [labels[int(i)] for i in index.rng.permutation(len(labels))]
    assigned = 0
    while assigned < n_control:
        for lab in order:
            if assigned >= n_control:
                break
            if control_slots[lab] < per_label:
                control_slots[lab] += 1
                assigned += 1
    by_label: dict[str, list[tuple[str, Suspect]]] = defaultdict(list)
    for rid, s in suspects.items():
        if index.labels[index.id_pos[rid]] is None:
            continue
        by_label[index.label_of(rid)].append((rid, s))
    chosen: list[tuple[int, int, str, Pick]] = []
    controls: list[Pick] = []
    taken: set[str] = set()
    for lab in labels:
        ranked = sorted(by_label.get(lab, []), key=lambda item: (-item[1].score, item[0]))
        n_suspect = per_label - control_slots[lab]
        for rank, (rid, s) in enumerate(ranked[:n_suspect]):
            taken.add(rid)
            pick = Pick(rid, lab, "suspect", f"named by {', '.join(s.checks)} (score {s.score})",
                        tuple(s.checks), s.score)
            chosen.append((-s.score, rank, lab, pick))
        missing = per_label - min(n_suspect, len(ranked))
        for rid in index.random_rows(lab, missing, taken):
            taken.add(rid)
            why = "random control row" if cfg.suspects_first else "random row (suspects_first off)"
            controls.append(Pick(rid, lab, "control", why))
    suspects_sorted = [p for *_, p in sorted(chosen, key=lambda c: (c[0], c[1], c[2]))]
    if not suspects_sorted or not controls:
        return suspects_sorted + controls
    return _interleave(suspects_sorted, controls)


@dataclass(frozen=True)
class Cluster:
    """Where flagged verdicts pile up: a label pair (given -> judge's best label) or a template frame."""

    kind: Literal["label_pair", "template"]
    key: str
    flagged: int
    given_label: str = ""
    best_label: str = ""
    rows: tuple[str, ...] = ()


def find_clusters(flagged: Sequence[tuple[str, str, str]], template_findings: Sequence[Finding], *,
                  min_flagged: int = 2) -> list[Cluster]:
    """Clusters among flagged verdicts `(row_id, given_label, best_label)`: label pairs with at
    least `min_flagged` verdicts, and template frames holding at least `min_flagged` flagged rows."""
    pairs: dict[tuple[str, str], int] = defaultdict(int)
    for _, given, best in flagged:
        if best != given:
            pairs[(given, best)] += 1
    out = [Cluster("label_pair", f"{g} -> {b}", n, g, b) for (g, b), n in sorted(pairs.items())
           if n >= min_flagged]
    flagged_ids = {rid for rid, _, _ in flagged}
    for f in template_findings:
        rows = tuple(str(r) for r in f.rows)
        hits = sum(1 for r in rows if r in flagged_ids)
        if hits >= min_flagged:
            named = KINDS[f.check].frames(f) if f.check in KINDS else []
            frame = (named[0] if named else f.id)[:80]
            out.append(Cluster("template", f"template {frame}", hits, rows=rows))
    return out


def plan_followups(clusters: Sequence[Cluster], index: LabelIndex, taken: set[str], cfg: SampleConfig,
                   rank_by_label: Callable[[Sequence[int], str], list[int]] | None = None) -> list[Pick]:
    """`followup_per_cluster` unjudged rows per cluster: for a label pair, rows of the given label
    the classifier finds most like the other label (`rank_by_label`), else random; for a template
    frame, random rows of that frame."""
    picks: list[Pick] = []
    taken = set(taken)
    n = cfg.followup_per_cluster
    for c in clusters:
        if c.kind == "label_pair":
            pool = [int(p) for p in index.positions.get(c.given_label, [])]
            if rank_by_label is not None:
                pool = rank_by_label(pool, c.best_label)
                rows = [index.ids[p] for p in pool if index.ids[p] not in taken][:n]
                why = f"follow-up {c.key}: rows of '{c.given_label}' most like '{c.best_label}'"
            else:
                rows = index.random_rows(c.given_label, n, taken)
                why = f"follow-up {c.key}: random rows of '{c.given_label}'"
        else:
            candidates = [r for r in c.rows if r in index.id_pos and r not in taken]
            order = index.rng.permutation(len(candidates))[:n]
            rows = [candidates[int(i)] for i in order]
            why = f"follow-up {c.key}: rows of the same frame"
        for rid in rows:
            taken.add(rid)
            picks.append(Pick(rid, index.label_of(rid), "followup", why))
    return picks
