"""The same all-MiniLM-L6-v2 through onnxruntime: the verified safetensors model is exported to ONNX
once (torch's exporter, into the model's cache folder, atomically) and optionally quantised to int8
(onnxruntime's dynamic quantisation). Encoding is tokenizers' fast tokenizer (the model folder's
tokenizer.json, 256 tokens), the ONNX graph, then mean pooling over the attention mask and L2
normalisation, exactly what the sentence-transformers folder describes (modules.json)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from audit_agent.io.atomic import atomic_path

MAX_TOKENS = 256
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17


def export_onnx(folder: Path, quantized: bool) -> Path:
    """`folder/onnx/model.onnx` (or `model_int8_pc.onnx`: per-channel weights, which keep the fp32
    neighbours better than per-tensor ones: top-10 kept 0.92 vs 0.86, min cosine 0.98 vs 0.83), made on
    first use."""
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
    if not quantized:
        return fp32
    int8 = folder / "onnx" / "model_int8_pc.onnx"
    if not int8.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with atomic_path(int8) as tmp:
            quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
    return int8


class OnnxEncoder:
    """Sentence vectors from the ONNX export; `encode` returns L2-normalised float32 rows."""

    def __init__(self, folder: Path, *, quantized: bool = False, batch_size: int = 32,
                 threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(export_onnx(folder, quantized)), options,
                                            providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(-lengths, kind="stable")  # similar lengths per batch: little padding
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            width = int(lengths[batch].max())
            feed = {name: np.zeros((len(batch), width), dtype=np.int64) for name in INPUTS}
            for row, i in enumerate(batch):
                e = encodings[i]
                n = len(e.ids)
                feed["input_ids"][row, :n] = e.ids
                feed["attention_mask"][row, :n] = e.attention_mask
                feed["token_type_ids"][row, :n] = e.type_ids
            hidden = self.session.run(None, feed)[0]
            mask = feed["attention_mask"][:, :, None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            out[batch] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return out
