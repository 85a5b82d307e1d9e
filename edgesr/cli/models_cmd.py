"""`edgesr models`: the registry as a table."""
from __future__ import annotations

import click


@click.command("models")
@click.option("--pretrained", is_flag=True, help="Only models with official weights.")
def command(pretrained: bool) -> None:
    """List registered models and their pretrained variants."""
    from edgesr.models import get_model_entry, list_models

    rows = [("model", "scales", "range", "pretrained (scale: Set5 PSNR/SSIM)", "description")]
    for name in list_models(pretrained_only=pretrained):
        e = get_model_entry(name)
        variants = ", ".join(
            f"{v.name} (x{v.scale}: {v.expected['Set5'][0]:.2f}/{v.expected['Set5'][1]:.4f})"
            if "Set5" in v.expected else v.name for v in e.pretrained) or "-"
        rows.append((name, ",".join(map(str, e.scales)), f"0..{e.input_range:g}", variants, e.description))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, r in enumerate(rows):
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
        if i == 0:
            click.echo("  ".join("-" * w for w in widths) + "  " + "-" * 11)
