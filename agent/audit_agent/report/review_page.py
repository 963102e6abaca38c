"""review.html: one self-contained page to review the balanced sample row by row in a browser.

The page needs no server and no network: its JavaScript and CSS are inlined, the rows are embedded as
JSON in a `<script type="application/json">` element (escaped so no row text can close it) and are
drawn with `textContent` only. A Content-Security-Policy lets run only the page's own script and
style (by hash), so even markup that slipped into the document could not execute or load anything.
Decisions live in the browser's localStorage under the audit's id and are exported as a CSV whose
format docs/review.md describes (`REVIEW_CSV_COLUMNS`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from audit_agent.context import AuditContext
from audit_agent.findings import Finding
from audit_agent.io.atomic import write_text
from audit_agent.review.page_rows import (
    ReviewMeta,
    ReviewRow,
    review_labels,
    review_meta_from,
    review_rows_from,
)

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATE = "review.html.j2"
SCRIPT_FILE = "review_page.js"
STYLE_FILE = "review_page.css"
REVIEW_PAGE_FILE = "review.html"

# The exported CSV (docs/review.md): one row per decided sample row, header first, UTF-8.
REVIEW_CSV_COLUMNS = ("id", "text", "label", "decision", "new_label", "review_label", "hard", "note",
                      "reviewer", "decided_at", "audit_id")
DECISIONS = ("keep", "relabel", "drop", "hard")
STORAGE_PREFIX = "audit-agent.review."


def json_for_script(obj: Any) -> str:
    """JSON that is safe inside a `<script>` element: `<`, `>`, `&` and the JavaScript line
    separators are written as \\u escapes, so no string can end the element or open a comment."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)
    return text


def csp_hash(source: str) -> str:
    """The Content-Security-Policy source expression allowing exactly this inline script or style."""
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


@cache
def _asset(name: str) -> str:
    text = (TEMPLATE_DIR / name).read_text(encoding="utf-8")
    if any(tag in text.lower() for tag in ("</script", "</style", "<!--")):
        raise ValueError(f"{name} must not contain a closing script or style tag or an HTML comment")
    return text


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), undefined=jinja2.StrictUndefined,
                              autoescape=True, keep_trailing_newline=True)


def page_data(rows: list[ReviewRow], labels: list[str], meta: ReviewMeta) -> dict[str, Any]:
    """Everything the page's script reads, as plain JSON-able values."""
    return {
        "meta": meta.model_dump(mode="json"),
        "labels": list(labels),
        "columns": list(REVIEW_CSV_COLUMNS),
        "decisions": list(DECISIONS),
        "storage_key": STORAGE_PREFIX + meta.audit_id,
        "rows": [{"id": r.id, "text": r.text, "label": r.label, "notes": list(r.notes),
                  "neighbours": [n._asdict() for n in r.neighbours]} for r in rows],
    }


def render_review_page(rows: list[ReviewRow], labels: list[str], meta: ReviewMeta) -> str:
    """The whole review.html as text (pure: no file is read but the page's own template and assets)."""
    script, style = _asset(SCRIPT_FILE), _asset(STYLE_FILE)
    csp = (f"default-src 'none'; script-src {csp_hash(script)}; style-src {csp_hash(style)}; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    return _environment().get_template(TEMPLATE).render(
        meta=meta, n_rows=len(rows), csp=csp, script=Markup(script),
        style=Markup(style),
        data=Markup(json_for_script(page_data(rows, labels, meta))),
    )


def write_review_page(ctx: AuditContext, findings: Sequence[Finding], out_dir: Path) -> Path | None:
    """Write review.html into `out_dir` (atomically); None when there is no review sample."""
    rows = review_rows_from(ctx, findings)
    if not rows:
        return None
    path = out_dir / REVIEW_PAGE_FILE
    write_text(path, render_review_page(rows, review_labels(ctx), review_meta_from(ctx, rows, findings)))
    return path
