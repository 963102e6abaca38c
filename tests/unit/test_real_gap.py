"""real_gap and eval_too_clean: a polished synthetic set vs messy real traffic is told apart; sets
drawn from the same writer are not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from audit_agent.checks import REGISTRY
from audit_agent.checks.real_gap import judge_eval_cleanliness
from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.features.split_compare import bag_of_words, nearest_train
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


# --- eval_too_clean judged on style: template-made eval sets (written for these tests) -------------
# Each intent has polished templates with slots; train and eval are filled from the SAME templates but
# with disjoint slot values, so train-vs-eval differ in words (topic) while their style is identical.
TEMPLATES = {
    "order_status": ["Could you please tell me when my order of {item} will be delivered to {city}?",
                     "I would like to know the current status of the {item} I ordered last week.",
                     "Hello, I placed an order for {item} and it has not arrived in {city} yet. Thank you."],
    "return_item": ["I would like to return the {item} I bought, as it does not fit my needs.",
                    "Could you please explain how I can send the {item} back from {city}?",
                    "Hello, what is the process for returning {item}? Thanks in advance for your help."],
    "store_hours": ["Could you please tell me the opening hours of your store in {city}?",
                    "I would like to know whether the {city} shop is open on Sundays.",
                    "Hello, at what time does your {city} branch close today? Thank you."],
}
SLOTS = {"train": {"item": ["blue jacket", "coffee grinder", "desk lamp", "garden hose", "yoga mat"],
                   "city": ["Leeds", "Porto", "Lyon", "Graz", "Turku"]},
         "eval": {"item": ["winter boots", "rice cooker", "office chair", "phone charger", "tent"],
                  "city": ["Boston", "Krakow", "Nantes", "Bergen", "Malmo"]}}
# Messy writing: plain fragments per intent, made messy the same way whatever the intent (endings,
# typos), so style does not depend on topic.
MESSY = {
    "order_status": ["wheres my {item}", "order not here yet", "{item} still not delivered", "my order",
                     "tracking says nothing"],
    "return_item": ["return {item}", "how send back", "{item} broke want refund", "return label",
                    "dont want the {item} anymore"],
    "store_hours": ["open sunday", "{city} shop hours", "when u close", "store open now", "hours {city}"],
    "lost_password": ["forgot password", "cant log in", "reset pw", "login broken", "locked out of account"],
    "gift_card": ["gift card balance", "card code not working", "giftcard expired", "use two gift cards",
                  "voucher wont apply"],
    "delivery_fee": ["why delivery so expensive", "shipping fee", "free shipping", "charged for delivery",
                     "fee too high"],
}
MESSY_ENDINGS = ["", "", "??", " pls", "!!", " asap", " wtf", "?"]


def messify(text: str, rng: np.random.Generator) -> str:
    """A typo in one word (half the time) and a random user-style ending."""
    words = text.split()
    i = int(rng.integers(len(words)))
    if rng.random() < 0.5 and len(words[i]) > 3:
        w = words[i]
        words[i] = w[0] + w[2] + w[1] + w[3:]
    return " ".join(words) + str(rng.choice(MESSY_ENDINGS))


def templated(n: int, side: str, seed: int) -> pd.DataFrame:
    """Polished rows of the TEMPLATES intents with the slot values of `side`."""
    rng = np.random.default_rng(seed)
    labels = [str(x) for x in rng.choice(list(TEMPLATES), n)]
    texts = [str(rng.choice(TEMPLATES[lab])).format(item=rng.choice(SLOTS[side]["item"]),
                                                     city=rng.choice(SLOTS[side]["city"])) for lab in labels]
    return pd.DataFrame({"id": [f"{side}{seed}-{i}" for i in range(n)], "text": texts, "label": labels})


def messy(n: int, intents: list[str], seed: int) -> pd.DataFrame:
    """Messy user-style rows of the given intents (slots from either side)."""
    rng = np.random.default_rng(seed)
    labels = [str(x) for x in rng.choice(intents, n)]
    texts = [messify(str(rng.choice(MESSY[lab])).format(item=rng.choice(SLOTS["eval"]["item"] + SLOTS["train"]["item"]),
                                                        city=rng.choice(SLOTS["eval"]["city"])), rng)
             for lab in labels]
    return pd.DataFrame({"id": [f"m{seed}-{i}" for i in range(n)], "text": texts, "label": labels})


def test_template_eval_is_high_although_its_words_differ_from_train():
    ctx = make_ctx(templated(300, "train", 20), eval_=templated(150, "eval", 21),
                   real=messy(40, list(TEMPLATES), 22))
    [f] = eval_too_clean(ctx)
    json.dumps(f.evidence.model_dump(mode="json"))
    ev = f.evidence
    # the words tell train from eval (topic): this used to overrule the style evidence
    assert ev["train_vs_eval"]["auc"] >= 0.85
    assert ev["style_distance"]["eval_train"] < 0.5 * ev["style_distance"]["eval_real"]
    assert ev["eval_real_style_auc"] >= 0.85
    assert f.severity == Severity.HIGH
    assert f"{ev['eval_real_style_auc']:.2f}" in f.message and f"{ev['style_distance']['eval_real']:.2f}" in f.message


def test_messy_eval_drawn_like_real_is_not_flagged():
    ctx = make_ctx(templated(300, "train", 23), eval_=messy(150, list(TEMPLATES), 24),
                   real=messy(40, list(TEMPLATES), 25))
    [f] = eval_too_clean(ctx)
    assert f.severity == Severity.INFO
    assert f.evidence["eval_real_style_auc"] < 0.75
    assert f.evidence["style_distance"]["eval_real"] < f.evidence["style_distance"]["eval_train"]


def test_topic_shift_alone_does_not_make_eval_clean():
    """Eval and real written the same (messy) way about different intents: words separate them, style does not."""
    ctx = make_ctx(templated(300, "train", 26), eval_=messy(150, ["order_status", "return_item", "store_hours"], 27),
                   real=messy(40, ["lost_password", "gift_card", "delivery_fee"], 28))
    [f] = eval_too_clean(ctx)
    assert f.evidence["eval_vs_real"]["auc"] >= 0.85  # topic alone separates them
    assert f.evidence["eval_real_style_auc"] < 0.75
    assert f.severity == Severity.INFO


def test_polished_real_traffic_about_other_topics_does_not_make_eval_clean():
    """Real traffic written as politely as train and eval, about other intents: nothing is too clean."""
    real = templated(40, "eval", 29).assign(text=lambda d: d["text"].str.replace("order", "booking"))
    ctx = make_ctx(templated(300, "train", 30), eval_=templated(150, "train", 31), real=real)
    [f] = eval_too_clean(ctx)
    assert f.severity == Severity.INFO
    assert f.evidence["eval_real_style_auc"] < 0.75


def test_judge_eval_cleanliness_rules():
    assert judge_eval_cleanliness(0.06, 0.57, 1.0) == Severity.HIGH
    assert judge_eval_cleanliness(0.40, 0.57, 1.0) == Severity.MEDIUM  # unlike real, but not as close to train
    assert judge_eval_cleanliness(0.06, 0.57, 0.6) == Severity.INFO  # style does not tell eval from real
    assert judge_eval_cleanliness(0.06, 0.10, 0.95) == Severity.MEDIUM  # real barely differs in style statistics
    assert judge_eval_cleanliness(0.06, 0.57, None) == Severity.MEDIUM
    assert judge_eval_cleanliness(0.30, 0.40, None) == Severity.INFO
