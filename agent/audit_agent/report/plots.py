"""PNG charts for the report (matplotlib, Agg canvas, no global pyplot state)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from audit_agent.io.atomic import write_with

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LABEL_COUNTS_FILE = "label_counts.png"
LENGTHS_FILE = "lengths.png"
MAX_BARS = 40
MAX_LENGTH_ROWS = 20_000


def _figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas (matplotlib is imported only when a plot is drawn)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return path


def plot_label_counts(counts: Mapping[str, int], path: Path) -> Path:
    """Horizontal bar chart of rows per label, largest first (at most MAX_BARS bars)."""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_BARS]
    labels = [str(k) for k, _ in items][::-1]
    values = [int(v) for _, v in items][::-1]
    fig = _figure(7, max(2.5, 0.32 * len(items) + 1))
    ax = fig.add_subplot()
    bars = ax.barh(labels, values, color="#4C72B0")
    ax.bar_label(bars, padding=3, fontsize=8)
    ax.set_xlabel("rows")
    title = "Rows per label (training set)"
    if len(counts) > MAX_BARS:
        title += f", largest {MAX_BARS} of {len(counts)}"
    ax.set_title(title)
    ax.margins(x=0.12)
    return _save(fig, path)


def words_per_row(texts: pd.Series, max_rows: int = MAX_LENGTH_ROWS) -> np.ndarray:
    """Whitespace-separated words per text, over at most `max_rows` evenly spaced rows (a histogram
    of shares does not need more)."""
    if len(texts) > max_rows:
        texts = texts.iloc[np.linspace(0, len(texts) - 1, max_rows).astype(int)]
    return np.fromiter((len(str(t).split()) for t in texts), dtype=np.int64, count=len(texts))


def plot_lengths(splits: Sequence[tuple[str, pd.Series]], path: Path) -> Path:
    """Overlaid density histograms of words per row, one per split (e.g. synthetic vs real)."""
    lengths = [(name, len(texts), words_per_row(texts)) for name, texts in splits if len(texts)]
    top = max(float(np.percentile(v, 99)) for _, _, v in lengths)
    bins = np.linspace(0, max(top, 5.0), 40)
    fig = _figure(7, 3.6)
    ax = fig.add_subplot()
    for name, n_rows, values in lengths:
        sampled = f", {len(values):,} sampled" if len(values) < n_rows else ""
        ax.hist(np.clip(values, 0, bins[-1]), bins=bins.tolist(), density=True, alpha=0.45,
                label=f"{name} ({n_rows:,} rows{sampled}, median {np.median(values):g} words)")
    ax.set_xlabel("words per row")
    ax.set_ylabel("share of rows")
    ax.set_title("Text length by split")
    ax.legend(fontsize=8)
    return _save(fig, path)
