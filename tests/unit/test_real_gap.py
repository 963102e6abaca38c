"""real_gap and eval_too_clean: a polished synthetic set vs messy real traffic is told apart; sets
drawn from the same writer are not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from audit_agent.checks import REGISTRY
from audit_agent.checks.real_gap import bag_of_words, nearest_train
from audit_agent.config import AuditConfig
from audit_agent.dataset import AuditContext, Dataset
from audit_agent.findings import Severity

eval_too_clean = REGISTRY["eval_too_clean"].run
real_gap = REGISTRY["real_gap"].run

# Written for these tests: per label, polished requests and the way users actually type.
PHRASES = {
    "card_arrival": (["when will my new card arrive", "my card has not arrived yet, what should I do",
                      "how long does delivery of a new card usually take", "where is the card you sent me"],
                     ["card not here", "wheres my card", "card stil missing", "no card yet and also wrong adress",
                      "kid threw away the letter", "card??"]),
    "refund_request": (["how do I request a refund for a purchase", "I would like a refund for my last order",
                        "can I get my money back for this item", "what is the process for a refund"],
                       ["refund pls", "refund??", "want money back asap", "merchant never paid me back",
                        "got charged twice and also no refund", "refnd not done"]),
    "pin_reset": (["how can I reset the PIN of my card", "I forgot my PIN, how do I change it",
                   "is it possible to set a new PIN online", "what should I do if my PIN is blocked"],
                  ["forgot pin", "pin blocked!!", "cant remember the code", "pin wrong again wtf",
                   "new pin plus new card", "pin resett"]),
    "exchange_rate": (["what exchange rate do you use for payments abroad", "how is the currency rate calculated",
                       "why was my exchange rate different from the official one", "where can I see today's rates"],
                      ["rate??", "bad rate on my payment", "euro rate wrong", "exhange rate is ridiculous",
                       "rate and also fees", "rates"]),
}
OPENERS = ["", "Hello, ", "Good morning. ", "Hi there, could you help me? "]
CLOSERS = ["", " Thank you for your assistance.", " I would appreciate your help.", " Thanks in advance."]
ENDINGS = ["", "", "?", " pls", " asap", "!!", "..."]


def formal_text(rng: np.random.Generator, label: str) -> str:
    base = str(rng.choice(PHRASES[label][0]))
    question = base.split()[0].lower() in {"when", "how", "can", "what", "is", "where", "why"}
    return str(rng.choice(OPENERS)) + base[0].upper() + base[1:] + ("?" if question else ".") + str(rng.choice(CLOSERS))


def messy_text(rng: np.random.Generator, label: str) -> str:
    return str(rng.choice(PHRASES[label][1])) + str(rng.choice(ENDINGS))


def make_frame(n: int, messy_share: float, seed: int) -> pd.DataFrame:
    """`n` rows over the four labels; each row is messy with probability `messy_share`."""
    rng = np.random.default_rng(seed)
    labels = [str(x) for x in rng.choice(list(PHRASES), n)]
    texts = [messy_text(rng, lab) if rng.random() < messy_share else formal_text(rng, lab) for lab in labels]
    return pd.DataFrame({"id": [f"r{seed}-{i}" for i in range(n)], "text": texts, "label": labels})


def make_ctx(train: pd.DataFrame, real: pd.DataFrame | None = None, eval_: pd.DataFrame | None = None,
             **checks: object) -> AuditContext:
    cfg = AuditConfig.model_validate({"checks": checks})
    return AuditContext(
        train=Dataset(Path("train.csv"), train),
        eval=Dataset(Path("eval.csv"), eval_) if eval_ is not None else None,
        real=Dataset(Path("real.csv"), real) if real is not None else None,
        config=cfg,
    )


def test_polished_train_vs_messy_real_is_high():
    ctx = make_ctx(make_frame(400, 0.0, 1), real=make_frame(40, 1.0, 2))
    [f] = real_gap(ctx)
    json.dumps(f.evidence.model_dump(mode="json"))
    sep = f.evidence["separability"]
    assert f.severity == Severity.HIGH
    assert sep["auc"] >= 0.9 and sep["auc_std"] >= 0
    assert sep["n_b"] == 40 and sep["n_a"] <= 4 * 40
    stats = f.evidence["stats"]
    assert stats["real"]["share_all_lowercase"] > 0.9 > stats["train"]["share_all_lowercase"]
    assert stats["real"]["mean_words"] < stats["train"]["mean_words"]
    least = f.evidence["least_covered"]
    assert len(least) == 10 and f.rows == [x["real_id"] for x in least]
    sims = [x["similarity"] for x in least]
    assert sims == sorted(sims) and all(0 <= s <= 1 for s in sims)
    train_ids = set(ctx.train.frame["id"])
    assert all(x["train_id"] in train_ids for x in least)


def test_same_writer_is_not_high():
    ctx = make_ctx(make_frame(400, 0.5, 3), real=make_frame(60, 0.5, 4))
    [f] = real_gap(ctx)
    assert f.severity != Severity.HIGH
    assert f.evidence["separability"]["auc"] < 0.8
    assert f.evidence["vocabulary"]["token_share_seen"] > 0.9


def test_too_few_real_rows_skips_classifier():
    ctx = make_ctx(make_frame(100, 0.0, 5), real=make_frame(4, 1.0, 6))
    [f] = real_gap(ctx)
    assert f.evidence["separability"] is None and f.severity == Severity.INFO
    assert len(f.evidence["least_covered"]) == 4


def test_nearest_train_finds_the_copy():
    train = make_frame(200, 0.5, 7)
    queries = [train["text"].iloc[17], "completely unrelated words about gardening tomatoes"]
    pos, sim, n_ref, words = nearest_train(Dataset(Path("t.csv"), train), queries, seed=0)
    assert n_ref == 200
    assert train["text"].iloc[pos[0]] == queries[0] and abs(sim[0] - 1.0) < 1e-4
    assert sim[1] < 0.2 and "card" in words and "gardening" not in words
    ref, q, ref_words = bag_of_words(["a b c", "d e"], ["a b c", "x"])
    assert ref_words == {"a", "b", "c", "d", "e"}
    assert ref.shape[0] == 2 and q.shape[0] == 2 and abs((q @ ref.T).toarray()[0, 0] - 1) < 1e-5


def test_eval_as_clean_as_train_is_high():
    ctx = make_ctx(make_frame(300, 0.0, 8), eval_=make_frame(150, 0.0, 9), real=make_frame(40, 1.0, 10))
    [f] = eval_too_clean(ctx)
    json.dumps(f.evidence.model_dump(mode="json"))
    assert f.severity == Severity.HIGH
    assert f.evidence["train_vs_eval"]["auc"] < 0.65 <= 0.85 <= f.evidence["eval_vs_real"]["auc"]
    assert f.evidence["style_distance"]["eval_train"] < f.evidence["style_distance"]["eval_real"]


def test_eval_like_real_is_not_flagged():
    ctx = make_ctx(make_frame(300, 0.0, 11), eval_=make_frame(150, 1.0, 12), real=make_frame(40, 1.0, 13))
    [f] = eval_too_clean(ctx)
    assert f.severity == Severity.INFO
    assert f.evidence["eval_vs_real"]["auc"] < 0.8
