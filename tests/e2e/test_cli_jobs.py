"""`audit-agent guide` and `audit-agent paraphrase` (and `--accept`) through the CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit_agent.cli import app
from tests.faultserver import FaultServer

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "fixtures" / "support"
TRAIN = SUPPORT / "train.csv"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit_agent", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=1200)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_accept_merges_only_accepted_rows_into_a_new_file(tmp_path: Path) -> None:
    review = tmp_path / "paraphrases.csv"
    with review.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["candidate_id", "source_id", "candidate", "label", "status"])
        writer.writeheader()
        writer.writerow({"candidate_id": "t0001-p1", "source_id": "t0001", "candidate": "refund pls, wrong size",
                         "label": "refund_request", "status": "accepted"})
        writer.writerow({"candidate_id": "t0002-p1", "source_id": "t0002", "candidate": "nope",
                         "label": "billing_issue", "status": "rejected"})
    before = digest(TRAIN)
    proc = cli("paraphrase", str(TRAIN), "--accept", str(review), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert digest(TRAIN) == before, "the original dataset must never be written"
    merged = next((tmp_path / "out").glob("train*"))
    lines = merged.read_text().splitlines()
    assert len(lines) == len(TRAIN.read_text().splitlines()) + 1
    assert any("refund pls, wrong size" in line for line in lines)
    assert not any(line.endswith(",nope,billing_issue") for line in lines)

    none = tmp_path / "none.csv"
    none.write_text("candidate,label,status\nx,refund_request,pending\n")
    bad = cli("paraphrase", str(TRAIN), "--accept", str(none), "--out", str(tmp_path / "o2"), cwd=tmp_path)
    assert bad.returncode == 2 and "no row has status 'accepted'" in bad.stderr and "Traceback" not in bad.stderr


# A scripted model (a local OpenAI-compatible server): a messy customer-voice rewrite per label,
# written for these tests from what each fixture label is about; for one label it answers in the
# support agent's voice, which verification must reject.
GOOD_REWRITES = {
    "shipping delay": "parcel still not here and tracking hasnt moved since monday",
    "change address": "i moved, pls update the address on my order before it ships",
    "billing issue": "got charged twice for the plan this month whats going on",
    "refund request": "want my money back for that order asap",
    "damaged item": "box came smashed and the thing inside is broken",
    "cancel subscription": "stop my plan pls, dont charge me next month",
    "account compromised": "someone hacked me, changed my email and password and i didnt do it",
}
AGENT_VOICE_LABEL = "login problem"
AGENT_VOICE = "I'm sorry, I can't help you with your login right now, please try again later"


def scripted_rewrite(schema: dict, messages: list[dict]) -> dict:
    user = str(messages[-1]["content"])
    if "keeps_label" in json.dumps(schema):
        return {"keeps_label": "yes"}
    label_words = re.search(r'Do not use the words "([^"]*)"', user)
    assert label_words is not None, user
    if label_words.group(1) == AGENT_VOICE_LABEL:
        return {"rewrite": AGENT_VOICE}
    return {"rewrite": GOOD_REWRITES[label_words.group(1)]}


@pytest.mark.slow
def test_paraphrase_keeps_good_rewrites_and_rejects_a_bad_one(tmp_path: Path) -> None:
    """Through the CLI against a scripted model: every good rewrite passes verification (status
    'pending'), the reply in the support agent's voice is rejected as not well formed, and the
    rejected slot gets a rule candidate."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"llm:\n  cache_dir: {tmp_path / 'cache'}\n")
    no_findings = tmp_path / "findings.jsonl"  # an earlier run that found nothing: no checks run here
    no_findings.write_text("")
    with FaultServer(reply=scripted_rewrite) as server:
        result = CliRunner().invoke(app, ["paraphrase", str(TRAIN), "--real", str(SUPPORT / "real.csv"),
                                          "--model", "openai/scripted", "--api-base", server.api_base,
                                          "--config", str(cfg), "--out", str(tmp_path / "p"),
                                          "--findings", str(no_findings), "--max-rows", "8", "--per-row", "1"])
        hits = server.hits
    assert result.exit_code == 0, result.stdout + result.stderr
    with (tmp_path / "p" / "paraphrases.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    llm = [r for r in rows if r["origin"] == "llm"]
    labels = {r["label"].replace("_", " ") for r in llm}
    assert len(llm) == hits == 8 and labels == {*GOOD_REWRITES, AGENT_VOICE_LABEL}, labels  # one row per label
    for row in llm:
        words = row["label"].replace("_", " ")
        if words == AGENT_VOICE_LABEL:
            assert row["llm_text"] == AGENT_VOICE
            assert row["status"] == "rejected" and row["checks_failed"].split(";")[0] == "well_formed", row
            assert "support agent's reply" in row["reason"], row["reason"]
        else:
            assert row["llm_text"] == GOOD_REWRITES[words]
            assert row["status"] == "pending", (row["candidate"], row["reason"])
            assert float(row["polish_candidate"]) < float(row["polish_source"])
    rule = [r for r in rows if r["origin"] == "rule"]
    assert [r["source_id"] for r in rule] == [r["source_id"] for r in llm if r["status"] == "rejected"]


@pytest.mark.e2e
def test_guide_and_paraphrase_with_the_embedded_model(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"llm:\n  cache_dir: {tmp_path / 'cache'}\n")
    guide = cli("guide", str(TRAIN), "--guide", str(SUPPORT / "guide.md"), "--out", str(tmp_path / "g"),
                "--config", str(cfg), "--max-calls", "12", cwd=tmp_path)
    assert guide.returncode == 0, guide.stderr[-3000:]
    text = (tmp_path / "g" / "revised_guide.md").read_text()
    for label in ("refund_request", "billing_issue", "account_compromised"):
        assert label in text
    assert (tmp_path / "g" / "revised_guide.diff").read_text().startswith("---")
    assert (tmp_path / "g" / "relabel_candidates.csv").exists()
    assert "data stays on this machine" in " ".join(guide.stderr.split())
    with (tmp_path / "g" / "guide_verification.csv").open() as fh:
        items = [r for r in csv.DictReader(fh) if r["rule"] == "definition and not_this well formed"]
    assert len(items) == 8  # one per fixture label
    # 12 calls cannot cover 8 labels, their repairs and the pairs, but the model answered the first ones
    answered = [r for r in items if "no usable reply" not in r["detail"]]
    assert answered, items

    para = cli("paraphrase", str(TRAIN), "--real", str(SUPPORT / "real.csv"), "--out", str(tmp_path / "p"),
               "--max-rows", "3", "--per-row", "2", "--config", str(cfg), cwd=tmp_path)
    assert para.returncode == 0, para.stderr[-3000:]
    with (tmp_path / "p" / "paraphrases.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {"source_id", "source_text", "candidate", "label", "status"} <= set(rows[0])
    assert {r["status"] for r in rows} <= {"pending", "rejected"}
    llm = [r for r in rows if r["origin"] == "llm"]
    assert len(llm) == 6 and all(r["llm_text"] for r in llm), "every call must get the model's reply"
    assert all(r["reason"] for r in rows if r["status"] == "rejected")
    assert (tmp_path / "p" / "paraphrases.jsonl").exists()
