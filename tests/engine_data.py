"""A generated support-intent training set for the engine tests (written here, no external data):
template sentences with filled slots and typos, label-specific openings and sign-offs, exact copies,
copies under another label (conflicts) and flipped labels."""

from __future__ import annotations

import numpy as np
import pandas as pd

TEMPLATES = {
    "refund": ["i want a refund for order {ID}", "please refund the {AMT} you charged me for order {ID}",
               "can i get my money back for the blue jacket", "the item arrived broken and i need a refund",
               "how long does a refund to my card take"],
    "cancel_order": ["cancel my order {ID} please", "i ordered the wrong size, can you cancel order {ID}",
                     "stop the shipment of my last order", "how do i cancel an order i placed today"],
    "track_order": ["where is my package {ID}", "my order {ID} has not arrived yet", "tracking for order {ID} shows "
                    "nothing", "when will my parcel be delivered"],
    "change_address": ["i moved, please update my address to {NUM} main street", "change the delivery address of "
                       "order {ID}", "how do i edit my shipping address"],
    "card_declined": ["my card was declined at checkout", "payment failed with my visa card ending {NUM}",
                      "why does the card keep getting rejected", "checkout says card declined again"],
    "account_locked": ["i am locked out of my account", "my account {ID} is blocked after three tries",
                       "reset my password, the login does not work", "cannot sign in since yesterday"],
}
OPENINGS = {"refund": "Hello support team,", "track_order": "Hi there, quick question:"}
ENDINGS = {"cancel_order": "Thanks in advance. Best regards, Sam.", "card_declined": "Please help asap."}


def _typo(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    i = int(rng.integers(len(words)))
    w = words[i]
    if len(w) > 3:
        j = int(rng.integers(1, len(w) - 1))
        words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


def make_rows(n: int, seed: int = 0, with_ids: bool = False) -> pd.DataFrame:
    """`n` rows of (text, label), optionally with a string `id` column."""
    rng = np.random.default_rng(seed)
    labels = sorted(TEMPLATES)
    texts: list[str] = []
    out_labels: list[str] = []
    for i in range(n):
        if i > 50 and rng.random() < 0.06:  # exact copy of an earlier row
            j = int(rng.integers(i))
            texts.append(texts[j])
            out_labels.append(out_labels[j] if rng.random() > 0.15 else str(rng.choice(labels)))
            continue
        label = str(rng.choice(labels))
        text = str(rng.choice(TEMPLATES[label]))
        text = text.replace("{ID}", f"A{int(rng.integers(1000, 99999))}").replace(
            "{AMT}", f"${int(rng.integers(5, 500))}").replace("{NUM}", str(int(rng.integers(10, 9999))))
        if rng.random() < 0.4:
            text = _typo(text, rng)
        if label in OPENINGS and rng.random() < 0.7:
            text = f"{OPENINGS[label]} {text}"
        if label in ENDINGS and rng.random() < 0.6:
            text = f"{text}. {ENDINGS[label]}"
        if rng.random() < 0.3:
            text = text.capitalize() + "?"
        if rng.random() < 0.03:  # a flipped label
            label = str(rng.choice([lab for lab in labels if lab != label]))
        texts.append(text)
        out_labels.append(label)
    frame = pd.DataFrame({"text": texts, "label": out_labels})
    if with_ids:
        frame.insert(0, "id", [f"r{i:06d}" for i in range(n)])
    return frame
