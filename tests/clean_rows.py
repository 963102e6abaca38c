"""Twelve distinct banking questions with their intents, no two alike: the clean rows the duplicate
and contamination tests plant their copies among."""

from __future__ import annotations

CLEAN: list[tuple[str, str]] = [
    ("What time does the branch open on Saturdays?", "opening_hours"),
    ("My card was swallowed by the cash machine.", "card_swallowed"),
    ("How much does an international transfer cost?", "transfer_fee"),
    ("Can I change the currency of my savings account?", "currency"),
    ("Why is there a pending payment from a hotel?", "pending_payment"),
    ("I would like to close my account today.", "close_account"),
    ("Where do I find my IBAN in the app?", "account_details"),
    ("The exchange rate looks wrong for euros.", "exchange_rate"),
    ("Is Apple Pay supported for top ups?", "top_up"),
    ("My new phone needs the banking app installed.", "app_setup"),
    ("Someone used my card in another country.", "fraud"),
    ("How long will the replacement card take to arrive?", "card_arrival"),
]
