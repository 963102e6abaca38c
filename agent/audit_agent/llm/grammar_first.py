"""Grammar-first greedy sampling for the embedded llama.cpp server (same tokens, less work).

llama-cpp-python's sampler chain runs the JSON grammar over the whole vocabulary (49,152 tokens for
SmolLM2) before every greedy pick: about 5-6 ms per generated token on one core, as long as the
forward pass itself. llama.cpp's own `common_sampler_sample` avoids that by checking the model's top
token against the grammar first and filtering the vocabulary only when it is rejected. This module
does the same for greedy decoding (temperature 0, no logits processors), after the same repeat /
frequency / presence penalties as the stock chain (the server's default repeat penalty is 1.1), in
three steps:

1. the arg-max token alone: accepted by the grammar -> it is the pick (most tokens);
2. else the `TOP_K` highest logits: the best accepted one of them is the pick when its logit is above
   the smallest of them, because every token outside them has a lower or equal logit;
3. else the whole vocabulary, exactly as the stock chain does.

Ties go to the lowest token id, as in llama.cpp's greedy sampler, so the picks are identical to the
stock grammar + greedy chain (tested token by token, and reply by reply against the real model).
`install()` patches `llama_cpp.Llama._init_sampler` in the server process only
(`audit_agent.llm.llama_server`); any other sampling setting keeps the stock chain.
"""

from __future__ import annotations

import ctypes
import inspect
import math
import sys
from collections import Counter, deque
from typing import Any

import numpy as np

TOP_K = 64


class Penalties:
    """llama.cpp's penalties sampler (repeat / frequency / presence over the last n picks), applied to a
    copy of the logits in float32 exactly as `llama_sampler_penalties_apply` does; only the recent tokens
    change, so this costs one copy of the logits."""

    def __init__(self, last_n: int, repeat: float, frequency: float, presence: float) -> None:
        self.last_n = last_n
        self.repeat = np.float32(repeat)
        self.frequency = np.float32(frequency)
        self.presence = np.float32(presence)
        self.recent: deque[int] = deque()
        self.counts: Counter[int] = Counter()

    @property
    def neutral(self) -> bool:
        return self.last_n == 0 or (self.repeat == 1 and self.frequency == 0 and self.presence == 0)

    def apply(self, logits: np.ndarray) -> np.ndarray:
        if self.neutral or not self.counts:
            return logits
        out = logits.copy()
        for token, count in self.counts.items():
            value = out[token]
            value = value * self.repeat if value <= 0 else value / self.repeat
            out[token] = value - (np.float32(count) * self.frequency + np.float32(1) * self.presence)
        return out

    def accept(self, token: int) -> None:
        if self.last_n <= 0:
            return
        if len(self.recent) >= self.last_n:
            old = self.recent.popleft()
            self.counts[old] -= 1
            if self.counts[old] == 0:
                del self.counts[old]
        self.recent.append(token)
        self.counts[token] += 1


class GrammarFirstGreedy:
    """A greedy sampler constrained by a llama.cpp grammar; duck-types `llama_cpp._internals.LlamaSampler`
    for what `Llama.sample` uses (`sample(ctx, idx)`, `close()`)."""

    def __init__(self, vocab: Any, n_vocab: int, grammar: str, root: str = "root", *,
                 penalty_last_n: int = 64, repeat_penalty: float = 1.0, frequency_penalty: float = 0.0,
                 presence_penalty: float = 0.0) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.n_vocab = n_vocab
        self._penalties = Penalties(penalty_last_n, repeat_penalty, frequency_penalty, presence_penalty)
        self.sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), root.encode("utf-8"))
        if not self.sampler:
            raise ValueError("llama.cpp could not parse the grammar")
        self._data = (llama_cpp.llama_token_data * n_vocab)()
        self._view = np.ctypeslib.as_array(self._data)  # structured view: id, logit, p
        self._ids = np.arange(n_vocab, dtype=self._view["id"].dtype)
        self.picks = {"top": 0, "top_k": 0, "full": 0}

    def _apply(self, size: int) -> np.ndarray:
        """Run the grammar over the first `size` entries; rejected tokens get a logit of -inf."""
        arr = self._lib.llama_token_data_array(data=self._data, size=size, selected=-1, sorted=False)
        self._lib.llama_sampler_apply(self.sampler, ctypes.byref(arr))
        return self._view[:size]

    def _best(self, entries: np.ndarray) -> int | None:
        """The accepted entry with the highest logit (lowest id among ties), or None if all were rejected."""
        logits = entries["logit"]
        top = float(logits.max())
        if math.isinf(top) and top < 0:
            return None
        return int(entries["id"][logits == top].min())

    def choose(self, logits: np.ndarray) -> int:
        """The greedy pick among the tokens the grammar accepts now (does not advance the grammar)."""
        token = int(np.argmax(logits))
        view = self._view
        view["id"][0], view["logit"][0], view["p"][0] = token, logits[token], 0.0
        if self._best(self._apply(1)) is not None:
            self.picks["top"] += 1
            return token
        top = np.argpartition(logits, -TOP_K)[-TOP_K:] if self.n_vocab > TOP_K else self._ids
        k = len(top)
        view["id"][:k], view["logit"][:k], view["p"][:k] = top, logits[top], 0.0
        floor = float(logits[top].min())
        best = self._best(self._apply(k))
        if best is not None and (k == self.n_vocab or float(logits[best]) > floor):
            self.picks["top_k"] += 1  # strictly above the cut: no tie can hide outside the top k
            return best
        view["id"], view["logit"], view["p"] = self._ids, logits, 0.0
        best = self._best(self._apply(self.n_vocab))
        self.picks["full"] += 1
        if best is None:
            raise RuntimeError("the grammar accepts no token here")
        return best

    def accept(self, token: int) -> None:
        self._lib.llama_sampler_accept(self.sampler, token)
        self._penalties.accept(token)

    def sample_logits(self, logits: np.ndarray) -> int:
        """The pick for these raw logits: penalties, then the grammar-first greedy choice."""
        return self.choose(self._penalties.apply(logits))

    def sample(self, ctx: Any, idx: int = -1) -> int:
        """Pick the next token from the logits of `ctx` at `idx` and advance the grammar."""
        ptr = self._lib.llama_get_logits_ith(ctx.ctx, idx)
        token = self.sample_logits(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)))
        self.accept(token)
        return token

    def close(self) -> None:
        if self.sampler:
            self._lib.llama_sampler_free(self.sampler)
            self.sampler = None

    def __del__(self) -> None:
        self.close()


def _is_greedy_with_grammar(arguments: dict[str, Any]) -> bool:
    return (arguments.get("grammar") is not None and arguments.get("temp") == 0.0
            and arguments.get("logits_processor") is None)


def install() -> bool:
    """Patch `llama_cpp.Llama` to use `GrammarFirstGreedy` for greedy grammar-constrained decoding.
    Returns False (and changes nothing) when this llama-cpp-python lacks the expected internals."""
    try:
        import llama_cpp
        from llama_cpp import Llama

        stock = Llama._init_sampler
        signature = inspect.signature(stock)
        needed = ("llama_sampler_init_grammar", "llama_sampler_apply", "llama_sampler_accept",
                  "llama_get_logits_ith", "llama_token_data", "llama_token_data_array", "llama_sampler_free")
        if not all(hasattr(llama_cpp, name) for name in needed) or not {"grammar", "temp"} <= set(signature.parameters):
            return False
    except (ImportError, AttributeError, TypeError, ValueError):
        return False
    if getattr(stock, "_grammar_first", False):
        return True

    def init_sampler(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = bound.arguments
        if _is_greedy_with_grammar(arguments):
            grammar = arguments["grammar"]
            try:
                return GrammarFirstGreedy(
                    self._model.vocab, self._n_vocab, grammar._grammar, grammar._root,
                    penalty_last_n=self.last_n_tokens_size, repeat_penalty=arguments["repeat_penalty"],
                    frequency_penalty=arguments["frequency_penalty"], presence_penalty=arguments["presence_penalty"])
            except (AttributeError, ValueError) as exc:
                print(f"grammar-first sampling unavailable ({exc}); using the stock sampler", file=sys.stderr)
        return stock(self, *args, **kwargs)

    init_sampler._grammar_first = True  # type: ignore[attr-defined]
    init_sampler._stock = stock  # type: ignore[attr-defined]
    Llama._init_sampler = init_sampler  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    """Undo `install()` (for tests that compare both samplers in one process)."""
    from llama_cpp import Llama

    stock = getattr(Llama._init_sampler, "_stock", None)
    if stock is not None:
        Llama._init_sampler = stock  # type: ignore[method-assign]
