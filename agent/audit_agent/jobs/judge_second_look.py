"""Second looks: when the judge's first answer and the model-free signals disagree, ask the same model
once more in the second framing (prompts/judge_second.jinja, the labels in another order).

A training row (never a canary) gets at most one second look, and only when its first answer is
- `quote_only`: a "contradicted" claim that failed verification on its quote alone; or
- `strong_suspect`: not a verified "contradicted" claim, while the model-free signals back another
  label strongly: a "contradicted" claim naming it would pass the backing rule of verify/judge.py,
  with two signals or with the classifier alone preferring it by at least `STRONG_MARGIN`.
Quote-only rows come first, then strong suspects whose first answer was a claim (ambiguous, or
contradicted naming another label), then those it called supported, strongest first. The second answer is verified by
the same rules as any answer (a real quote, model-free backing of the label it proposes), so a second
look turns a row into a verified finding only on the evidence a first answer would need. At most
`judge.second_look_share` of the judge's calls go to second looks, after round 1 (the planned
suspects and the random sample); one judge only (two judges already read every row twice).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from audit_agent.jobs.judge_records import Answer, Judged
from audit_agent.tasks.judge import Verdict
from audit_agent.verify.judge import RowSignals, backing_short, backing_signals, self_contradictory

SECOND_LOOK = "second_look"
"""The role (key in `Judged.answers`) of a second look's answer."""
STRONG_MARGIN = 0.3
"""With one backing signal, a row is a strong suspect only when the classifier gives the other label
at least this much more probability than the given one (chosen on the bundled example)."""
PLAN_RESERVE_SHARE = 0.5
"""This share of the second looks' cap is held back from the suspects in the plan, so a run whose
suspects would fill the budget still has room for second looks (what they leave goes to follow-ups).
Set before any benchmark (the bundled example never fills its plan); the whole cap was tried on a
Banking77 sample, took 9 more rows and verified no more wrong labels."""
RESERVE_BELOW_SCORE = 0.9
"""The plan's reserve is kept only from suspects whose check score is below this: it never displaces
a near-certain suspect (label_issue rows score >= 0.99). With 60 calls on the bundled example a
reserve taken from any suspect cost three label_issue rows, all wrong labels, for three second looks
that found nothing."""
RESERVE_SHARE = 0.2
"""Of a round that would spend the rest of the budget, this share (at most the second looks still
allowed) is held back for second looks on the rows that round judges."""
SignalFor = Callable[[str, str, str], RowSignals]
"""(row id, proposed label, given label) -> the row's model-free signals."""


@dataclass(frozen=True)
class LookCandidate:
    """A row worth a second look: why, the label the signals back (strong suspects), and how strongly."""

    row_id: str
    reason: str
    backed_label: str | None = None
    signals: int = 0
    margin: float = 0.0

    @property
    def why(self) -> str:
        if self.reason == "quote_only":
            return "second look: the 'contradicted' claim failed verification only on its quote"
        return (f"second look: the model-free signals back '{self.backed_label}' ({self.signals} signal(s), "
                f"classifier margin {self.margin:+.2f}) but the first answer is no verified claim of it")


@dataclass
class SecondLooks:
    """What the second looks did, for report.md and summary.json."""

    cap: int = 0
    """Calls the plan allowed for second looks (`judge.second_look_share` of the judge's calls)."""
    taken: int = 0
    """Second looks asked (answered or not)."""
    answered: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    """quote_only / strong_suspect."""
    outcomes: dict[str, int] = field(default_factory=dict)
    """verified_contradicted / verified_ambiguous (the second answer passed verification),
    same_answer (as the first one), unverified_claim, supported (no claim)."""
    new_verified: int = 0
    """Rows whose verified finding comes from the second look (their first answer was not verified)."""
    note: str = ""
    """Why none were taken, when none were."""


def quote_only(a: Answer | None) -> bool:
    """A "contradicted" answer whose verification failed on its quote and nothing else."""
    if a is None or a.verification is None or a.verification.verified or a.verdict.verdict is not Verdict.CONTRADICTED:
        return False
    evidence = a.verification.evidence
    return not evidence.get("quote_found", True) and len(evidence.get("failed_because", [])) == 1


def verified_contradicted(a: Answer | None) -> bool:
    return (a is not None and a.verdict.verdict is Verdict.CONTRADICTED and a.verification is not None
            and a.verification.verified)


def strong_label(row_id: str, given: str, signal_for: SignalFor, min_backing: int) -> LookCandidate | None:
    """The other label the model-free signals back strongly (the classifier's top label or the
    neighbours' majority), or None."""
    base = signal_for(row_id, given, given)
    options = {base.oof_top} | {lab for lab in base.knn_labels if 2 * base.knn_labels.count(lab) > len(base.knn_labels)}
    best: LookCandidate | None = None
    for label in sorted(x for x in options if x is not None and x != given):
        sig = signal_for(row_id, label, given)
        backed = backing_signals(label, given, sig)
        if backing_short(backed, min_backing) is not None:
            continue
        margin = (sig.p_best or 0.0) - (sig.p_given or 0.0)
        if len(backed) < 2 and margin < STRONG_MARGIN:
            continue
        cand = LookCandidate(row_id, "strong_suspect", label, len(backed), round(margin, 4))
        if best is None or (cand.signals, cand.margin) > (best.signals, best.margin):
            best = cand
    return best


def choose_looks(judged: Sequence[Judged], signal_for: SignalFor, min_backing: int, n: int) -> list[LookCandidate]:
    """Up to `n` rows for a second look in the order of the module docstring (strong suspects by
    signals, then margin); rows already looked at, canaries and unanswered rows never."""
    if n <= 0:
        return []
    ranked: list[tuple[int, int, float, str, LookCandidate]] = []
    for j in judged:
        first = j.answers.get("first")
        if j.canary is not None or j.second_look is not None or first is None or verified_contradicted(first):
            continue
        if quote_only(first):
            ranked.append((0, 0, 0.0, j.row.row_id, LookCandidate(j.row.row_id, "quote_only")))
        elif (cand := strong_label(j.row.row_id, j.row.label, signal_for, min_backing)) is not None:
            tier = 2 if first.verdict.verdict is Verdict.SUPPORTED else 1  # a disputed answer before a "supported"
            ranked.append((tier, -cand.signals, -cand.margin, cand.row_id, cand))
    return [c for *_, c in sorted(ranked, key=lambda t: t[:4])][:n]


def look_outcome(first: Answer, look: Answer, given: str) -> str:
    """What a second look said, next to the first answer (see `SecondLooks.outcomes`)."""
    ok = look.verification is not None and look.verification.verified
    if ok and look.verdict.verdict is Verdict.CONTRADICTED:
        return "verified_contradicted"
    if ok and look.verdict.verdict is Verdict.AMBIGUOUS:
        return "verified_ambiguous"
    if (look.verdict.verdict, look.verdict.best_label) == (first.verdict.verdict, first.verdict.best_label):
        return "same_answer"
    if look.verdict.verdict is not Verdict.SUPPORTED and not self_contradictory(look.verdict, given):
        return "unverified_claim"
    return "supported"


def summarize(judged: Sequence[Judged], cap: int, note: str, claim_roles: dict[str, str]) -> SecondLooks:
    """The second looks of a run; `claim_roles`: row id -> role of the answer its finding reports."""
    out = SecondLooks(cap=cap, note=note)
    for j in judged:
        if j.canary is not None or j.second_look is None:
            continue
        out.taken += 1
        out.by_reason[j.second_look] = out.by_reason.get(j.second_look, 0) + 1
        look, first = j.answers.get(SECOND_LOOK), j.answers.get("first")
        if look is None or first is None:
            continue
        out.answered += 1
        kind = look_outcome(first, look, j.row.label)
        out.outcomes[kind] = out.outcomes.get(kind, 0) + 1
        out.new_verified += claim_roles.get(j.row.row_id) == SECOND_LOOK and kind.startswith("verified")
    if not out.taken and not out.note and cap:
        out.note = ("no first answer was doubted strongly by the model-free signals, and no 'contradicted' claim "
                    "failed verification only on its quote")
    return out
