"""The same all-MiniLM-L6-v2 through onnxruntime: the verified safetensors model is exported to ONNX
once (torch's exporter, into the model's cache folder, atomically) and optionally quantised to int8:
`int8` is onnxruntime's dynamic quantisation (one int8 scale per activation tensor), `int8-block` stores
every linear layer's weights as int8 in blocks of `BLOCK` input values with one scale each (MatMulNBits)
and lets onnxruntime quantise each row's activations in blocks of the same size (accuracy level 4): 98 %
of rows keep their fp32 first neighbour, the rest are near ties (docs/benchmarks.md, section 10).
Encoding (`GraphEncoder`, shared with the OpenVINO runtime in openvino_encoder.py) is tokenizers' fast
tokenizer (the model folder's tokenizer.json, 256 tokens), the ONNX graph, then mean pooling over the
attention mask and L2 normalisation, exactly what the sentence-transformers folder describes (modules.json)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from audit_agent.io.atomic import atomic_path

MAX_TOKENS = 256
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17
BLOCK = 16  # int8-block: input values per weight scale and per activation scale (16 kept more neighbours than 32)
Precision = Literal["fp32", "int8", "int8-block"]
FILES: dict[str, str] = {"fp32": "model.onnx", "int8": "model_int8_pc.onnx", "int8-block": f"model_int8_block{BLOCK}.onnx"}


def export_onnx(folder: Path, precision: Precision = "fp32") -> Path:
    """`folder/onnx/model.onnx`, or a quantised copy of it (`FILES`), made on first use. `int8`:
    per-channel weights, which keep the fp32 neighbours better than per-tensor ones (top-10 kept 0.92 vs
    0.86, min cosine 0.98 vs 0.83); `int8-block`: see `quantize_blocks`."""
    fp32 = folder / "onnx" / "model.onnx"
    if not fp32.exists():
        import torch
        from transformers import AutoModel

        bert = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()

        class Hidden(torch.nn.Module):  # keyword call: the positional order differs between versions
            def __init__(self) -> None:
                super().__init__()
                self.bert = bert

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        token_type_ids: torch.Tensor) -> torch.Tensor:
                return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                                 token_type_ids=token_type_ids).last_hidden_state

        model = Hidden().eval()
        sample = {name: torch.ones((2, 8), dtype=torch.long) for name in INPUTS}
        sample["token_type_ids"] = torch.zeros((2, 8), dtype=torch.long)
        axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
        fp32.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(fp32) as tmp, torch.no_grad():
            torch.onnx.export(model, (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
                              str(tmp), input_names=list(INPUTS), output_names=["last_hidden_state"],
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    if precision == "fp32":
        return fp32
    target = folder / "onnx" / FILES[precision]
    if not target.exists():
        with atomic_path(target) as tmp:
            if precision == "int8-block":
                quantize_blocks(fp32, tmp)
            else:
                from onnxruntime.quantization import QuantType, quantize_dynamic

                quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
    return target


def quantize_blocks(source: Path, target: Path, block: int = BLOCK) -> None:
    """Every MatMul with a constant 2-D weight [K, N] becomes onnxruntime's MatMulNBits: 8-bit weights,
    one float scale per `block` consecutive input values of each output column (symmetric, q = round(w /
    scale) + 128, scale = max |w| / 127 of the block), and accuracy level 4, i.e. int8 products with the
    activations also quantised per row in blocks of `block`. Each row's result depends on that row only
    (no batch-wide scale), so a text gets the same vector whatever it is batched with."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    nodes, dropped, added = [], set(), []
    for node in graph.node:
        w = weights.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        if w is None or len(w.dims) != 2 or uses[w.name] != 1:
            nodes.append(node)
            continue
        arr = numpy_helper.to_array(w).astype(np.float32)  # [K, N]
        k, n = arr.shape
        blocks = -(-k // block)
        cols = np.zeros((n, blocks * block), dtype=np.float32)
        cols[:, :k] = arr.T
        cols = cols.reshape(n, blocks, block)
        scale = np.abs(cols).max(axis=2) / 127.0
        scale[scale == 0] = 1.0
        q = (np.clip(np.rint(cols / scale[:, :, None]), -127, 127) + 128).astype(np.uint8)
        added += [numpy_helper.from_array(q, f"{w.name}_q8"), numpy_helper.from_array(scale.astype(np.float32), f"{w.name}_scales")]
        dropped.add(w.name)
        nodes.append(helper.make_node("MatMulNBits", [node.input[0], f"{w.name}_q8", f"{w.name}_scales"], list(node.output),
                                      name=f"{node.name}_q8", domain="com.microsoft", K=k, N=n, bits=8,
                                      block_size=block, accuracy_level=4))
    kept = [t for t in graph.initializer if t.name not in dropped]
    graph.ClearField("initializer")
    graph.initializer.extend(kept + added)
    graph.ClearField("node")
    graph.node.extend(nodes)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(target))


class GraphEncoder:
    """Tokenising, batching and pooling around the exported graph; a subclass runs it (`hidden`).
    `encode` returns L2-normalised float32 rows. Each batch holds rows of one token length (sorted, at
    most `batch_size`), so no row is padded: OpenVINO sums a padded row's positions in another order
    (up to 5e-4 in bf16), and this way a row's vector never depends on the rows batched with it."""

    def __init__(self, folder: Path, *, batch_size: int = 32) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        self.batch_size = batch_size

    def hidden(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The graph's last_hidden_state [rows, tokens, 384] for one batch."""
        raise NotImplementedError

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(-lengths, kind="stable")
        ends = np.flatnonzero(np.diff(lengths[order])) + 1  # where the token length changes
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for same in np.split(order, ends):
            for start in range(0, len(same), self.batch_size):
                batch = same[start:start + self.batch_size]
                feed = {name: np.array([getattr(encodings[i], attr) for i in batch], dtype=np.int64)
                        for name, attr in zip(INPUTS, ("ids", "attention_mask", "type_ids"), strict=True)}
                hidden = self.hidden(feed)
                mask = feed["attention_mask"][:, :, None].astype(np.float32)
                pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
                out[batch] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return out


class OnnxEncoder(GraphEncoder):
    """The export run by onnxruntime (fp32 or one of the int8 copies)."""

    def __init__(self, folder: Path, *, precision: Precision = "fp32", batch_size: int = 32,
                 threads: int | None = None) -> None:
        import onnxruntime as ort

        super().__init__(folder, batch_size=batch_size)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(export_onnx(folder, precision)), options,
                                            providers=["CPUExecutionProvider"])

    def hidden(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.session.run(None, feed)[0])
