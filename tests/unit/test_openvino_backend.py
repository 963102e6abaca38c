"""The openvino embedding backend: the default when installed, the fp32 onnx vectors (bf16: within
cosine 0.999, under its own cache key), one vector per text whatever it is batched with, and a clean
fallback or one-line error without openvino."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from audit_agent.errors import ConfigError
from audit_agent.features import embeddings as E
from audit_agent.features.onnx_encoder import GraphEncoder
from tests.unit.test_embeddings import ENCODER_TEXTS, needs_model

needs_openvino = pytest.mark.skipif(not (E.openvino_ready() and E.onnx_ready()), reason="openvino/onnxruntime not installed")
_find_spec = importlib.util.find_spec


def _hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make `modules` look not installed."""
    monkeypatch.setattr(E.importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] in modules else _find_spec(name, *a))


def test_auto_is_openvino_then_onnx_then_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(E, "openvino_ready", lambda: True)
    monkeypatch.setattr(E, "onnx_ready", lambda: True)
    assert E.resolve_backend("auto") == "openvino"
    monkeypatch.setattr(E, "openvino_ready", lambda: False)
    assert E.resolve_backend("auto") == "onnx"
    monkeypatch.setattr(E, "onnx_ready", lambda: False)
    assert E.resolve_backend("auto") == "torch"
    assert E.resolve_backend("onnx") == "torch"  # the same vectors without onnxruntime


def test_openvino_needs_the_onnx_package_for_the_export(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "onnx")
    assert not E.openvino_ready()
    _hide(monkeypatch, "openvino")
    assert not E.openvino_ready()


def test_requesting_openvino_without_it_is_a_one_line_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "openvino")
    with pytest.raises(ConfigError) as err:
        E.resolve_backend("openvino")
    msg = str(err.value)
    assert "pip install 'openvino>=2025.0' onnx" in msg and "\n" not in msg and err.value.exit_code == 2
    with pytest.raises(ConfigError, match="unknown backend 'openvin'"):
        E.resolve_backend("openvin")


def test_the_cache_key_follows_the_precision_openvino_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from audit_agent.features import openvino_encoder

    fp32 = E.model_key("onnx")
    assert E.model_key("openvino", "f32") == fp32  # measured equal to onnxruntime's vectors (4e-7)
    assert E.model_key("openvino", "bf16") != fp32 and E.model_key("openvino", "bf16").endswith(":openvino-bf16")
    monkeypatch.setattr(openvino_encoder, "cpu_precision", lambda: "bf16")
    assert E.model_key("openvino") == E.model_key("openvino", "bf16")
    monkeypatch.setattr(openvino_encoder, "cpu_precision", lambda: "f32")
    assert E.model_key("openvino") == fp32


class _Stand(GraphEncoder):
    """The shared tokenising, batching and pooling around a stand-in graph (hidden state of token t
    with id i in dimension d: i * (d + 1) + t), recording each batch."""

    def __init__(self, folder: Path, batch_size: int) -> None:
        super().__init__(folder, batch_size=batch_size)
        self.batches: list[dict[str, np.ndarray]] = []

    def hidden(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        self.batches.append(feed)
        ids = feed["input_ids"][:, :, None].astype(np.float32)
        return ids * np.arange(1, 385, dtype=np.float32) + np.arange(ids.shape[1], dtype=np.float32)[None, :, None]


def test_batches_hold_one_token_length_so_no_row_is_padded(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(["a", "b", "c", "d", "e"])}}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    texts = ["a", "b c", "a b c d", "e", "c d", "d", "e e e e", "b", "a a"]
    enc = _Stand(tmp_path, batch_size=2)
    vecs = enc.encode(texts)
    for feed in enc.batches:
        assert feed["attention_mask"].all() and len(feed["input_ids"]) <= 2  # no padding, at most batch_size rows
    assert sum(len(f["input_ids"]) for f in enc.batches) == len(texts)
    pooled = np.array([np.mean([vocab[w] for w in t.split()]) * np.arange(1, 385) + (len(t.split()) - 1) / 2
                       for t in texts])  # mean over the row's own tokens, then L2 normalisation
    np.testing.assert_allclose(vecs, pooled / np.linalg.norm(pooled, axis=1, keepdims=True), rtol=1e-5)
    for t, v in zip(texts, vecs, strict=True):
        np.testing.assert_array_equal(enc.encode([t])[0], v)


def _cycle(n: int) -> str:
    """A synthetic sentence of `n` words (42 and 47 tokens for 40 and 45: in bf16, OpenVINO's vector of
    such a row changed when it was padded to a multiple of 16 tokens)."""
    words = ["i", "want", "to", "cancel", "my", "contract", "please", "end", "my", "subscription", "with", "you", "because", "the", "card", "was", "charged", "twice", "and", "nobody", "answers", "the", "phone"]
    return " ".join(itertools.islice(itertools.cycle(words), n))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return E.model_dir(tmp_path_factory.mktemp("cache"))


@pytest.mark.slow
@needs_model
@needs_openvino
def test_openvino_gives_the_fp32_onnx_vectors_and_the_same_vector_in_any_batch(folder: Path) -> None:
    from audit_agent.features.openvino_encoder import OpenVinoEncoder

    texts = [*ENCODER_TEXTS, _cycle(40), _cycle(45)]
    fp32 = E.Encoder(folder, backend="onnx").encode(texts)
    f32 = OpenVinoEncoder(folder, precision="f32").encode(texts)
    np.testing.assert_allclose(f32, fp32, atol=5e-5)  # why it shares the fp32 cache key
    bf16 = OpenVinoEncoder(folder, precision="bf16")
    vecs = bf16.encode(texts)
    assert (vecs * fp32).sum(axis=1).min() > 0.999
    assert np.abs(vecs - fp32).max() > 1e-5  # bf16 really ran (its vectors are not the fp32 ones)
    for text, vec in zip(texts, vecs, strict=True):  # batched with a 256-token row or alone: the same vector
        np.testing.assert_array_equal(bf16.encode([text])[0], vec)
    np.testing.assert_array_equal(bf16.encode(texts[::-1])[::-1], vecs)


@pytest.mark.slow
@needs_model
@needs_openvino
def test_the_openvino_encoder_caches_under_its_precisions_key(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from audit_agent.features import openvino_encoder

    enc = E.Encoder(folder, backend="auto")
    assert enc.backend == "openvino" and enc.key == E.model_key("openvino", openvino_encoder.cpu_precision())
    monkeypatch.setattr(openvino_encoder, "cpu_precision", lambda: "f32")
    enc = E.Encoder(folder, backend="openvino")
    assert enc.key == E.model_key("onnx")
    assert isinstance(enc.graph, openvino_encoder.OpenVinoEncoder) and enc.graph.precision == "f32"


@needs_model
def test_without_openvino_auto_falls_back_to_onnx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "openvino")
    embedder = E.TextEmbedder(tmp_path, backend="auto")
    assert embedder.backend == ("onnx" if E.onnx_ready() else "torch") and embedder.key == E.model_key("onnx")


@needs_model
def test_cli_with_openvino_requested_but_missing_exits_2_in_one_line(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from audit_agent.cli import app

    _hide(monkeypatch, "openvino")
    train = tmp_path / "train.csv"
    pd.DataFrame({"text": ["my card is lost", "hello there", "where is my refund", "card stolen"],
                  "label": ["card", "greet", "refund", "card"]}).to_csv(train, index=False)
    config = tmp_path / "config.yaml"
    config.write_text(f"embeddings:\n  backend: openvino\n  cache_dir: {tmp_path / 'cache'}\n")
    result = CliRunner().invoke(app, ["run", str(train), "--no-llm", "--check", "semantic_duplicate",
                                      "--config", str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "pip install 'openvino>=2025.0' onnx" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
