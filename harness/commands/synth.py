"""`harness synth`: write synthetic report texts with a synthesizer, and audit them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.commands import console, fail
from harness.core.errors import HarnessError


def _generate(name: str, options: tuple[str, ...], classes: tuple[str, ...], n: int, seed: int):
    import numpy as np

    from harness.core.rng import derive_seed
    from harness.plugins import make_registry
    from harness.spec import parse_option_args

    opts = parse_option_args(list(options)).get("synthesizer", {})
    synth = make_registry().create("synthesizer", name, opts)
    texts = {}
    for label in classes:
        rng = np.random.default_rng(derive_seed("synth", name, label, seed))
        texts[label] = synth.synthesize(label, n, rng)
    return synth, texts


def _classes(value: str | None) -> tuple[str, ...]:
    from harness.data.labels import PHANTOM8_CLASSES

    return tuple(c.strip() for c in value.split(",")) if value else PHANTOM8_CLASSES


@click.group("synth", invoke_without_command=True)
@click.option("--synthesizer", default="template", show_default=True)
@click.option("-o", "--option", "options", multiple=True, metavar="synthesizer.KEY=VALUE")
@click.option("--classes", default=None, help="Comma-separated labels (default: phantom8's).")
@click.option(
    "--n", type=click.IntRange(min=1), default=20, show_default=True, help="Texts per class."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write texts as JSONL ({label, text} per line).",
)
@click.pass_context
def synth(ctx, synthesizer, options, classes, n, seed, out) -> None:
    """Generate report texts per class with a synthesizer, then audit them.

    With --synthesizer gemini the answers fill its on-disk cache; a rerun makes no requests.
    """
    if ctx.invoked_subcommand is not None:
        return
    from harness.core.atomic import write_text_atomic
    from harness.text.audit import audit_texts, render_audit_table

    try:
        with console.status(f"synthesizing {n} texts per class with {synthesizer}"):
            synth_obj, texts = _generate(synthesizer, options, _classes(classes), n, seed)
    except HarnessError as exc:
        fail(exc)
    if out is not None:
        lines = [json.dumps({"label": k, "text": t}) for k, v in texts.items() for t in v]
        write_text_atomic(out, "\n".join(lines) + "\n")
        console.print(f"wrote {len(lines)} texts to {out}")
    console.print(render_audit_table(audit_texts(texts), title=f"{synthesizer} audit"))
    stats = getattr(synth_obj, "stats", None)
    if stats:
        hidden = ("per_class", "last_error", "warnings", "rejected_items")  # warnings: logged
        shown = {k: v for k, v in stats.items() if k not in hidden}
        console.print(f"stats: {json.dumps(shown, default=str)}")
        _print_rejections(stats.get("rejected_items") or [])


def _print_rejections(records: list[dict], limit: int = 10) -> None:
    """One line per rejected text: where it is in the cache, why, and the words it matched."""
    for r in records[:limit]:
        words = f" ({', '.join(r['matched'])})" if r.get("matched") else ""
        console.print(
            f"rejected {r['label']} item {r['item']} of {r['cache_file']}: {r['reason']}{words}",
            highlight=False,
        )
    if len(records) > limit:
        console.print(f"... and {len(records) - limit} more rejected texts")


@synth.command("audit")
@click.option(
    "--file",
    "path",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Audit a JSONL file of {label, text} instead of generating.",
)
@click.option("--synthesizer", default="template", show_default=True)
@click.option("-o", "--option", "options", multiple=True, metavar="synthesizer.KEY=VALUE")
@click.option("--classes", default=None)
@click.option("--n", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def audit(path, synthesizer, options, classes, n, seed) -> None:
    """Per class: count, uniqueness, length, and the share stating another class.

    A mention of another class's keywords is read in context: "no pneumothorax" is negated and
    no leak; "cannot exclude a pneumothorax" is uncertain, shown in its own column; only a
    positive mention makes a text leak.
    """
    from harness.text.audit import audit_texts, render_audit_table

    try:
        if path is not None:
            texts: dict[str, list[str]] = {}
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    texts.setdefault(row["label"], []).append(row["text"])
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    fail(f"{path}:{i}: expected a JSON object with label and text ({exc})")
            title = f"audit of {path}"
        else:
            _, texts = _generate(synthesizer, options, _classes(classes), n, seed)
            title = f"{synthesizer} audit ({n} per class)"
    except HarnessError as exc:
        fail(exc)
    console.print(render_audit_table(audit_texts(texts), title=title))
