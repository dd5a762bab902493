"""Reports of a sweep: a contact sheet, a loss-curve overlay and one self-contained HTML page.

``semstyle report SWEEP --rows style_weight --cols content_layers`` (or :func:`report`) writes into the sweep
folder:

- ``sheet.png``: the result of every run in a grid, rows and columns labelled by the swept values
  (:func:`contact_sheet`; keys not on an axis are folded into the columns);
- ``losses.png``: every run's total loss against the step, one curve per run (:func:`loss_overlay`);
- ``metrics.csv`` / ``metrics.md``: the metrics table (:func:`semstyle.experiments.metrics.collect`);
- ``report.html``: the sheet, the sortable metrics table, the loss overlay, and per run its state, its result,
  its config's differences from the sweep's base config and a link to its folder. Pictures are inlined (base64),
  links point into the sweep folder, and there is no script or style from anywhere else: the page opens from disk
  with no server and no network.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import itertools
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image, ImageDraw, ImageFont

from ..api import load_config
from ..conf.checks import check_sweep_folder
from ..conf.common import COSMETIC_KEYS
from ..conf.vocab import METRIC_SIZE
from ..core.image import atomic_write, load_image, to_pil
from ..errors import SemstyleError, check
from ..viz.layout import grid
from ..viz.plots import overlay_curves
from . import metrics
from .sweep import load_sweep

FONT_PX = 12
PAD = 4


def _sweep(path) -> tuple[dict, list[dict]]:
    path = Path(path)
    check_sweep_folder(path)
    return load_sweep(path), metrics.sweep_runs(path)


def _params(data: dict, runs: list[dict]) -> dict[str, list[str]]:
    """Swept keys and their values in sweep order (from ``params``, else from the runs' overrides)."""
    params = {str(k): [str(v) for v in values] for k, values in (data.get("params") or {}).items()}
    for r in runs:
        for key, value in r["overrides"].items():
            if value not in params.setdefault(key, []):
                params[key].append(value)
    return params


def _axes(params: dict[str, list[str]], rows: str | None, cols: str | None) -> tuple[list[str], list[str]]:
    keys = list(params)
    for option, key in (("--rows", rows), ("--cols", cols)):
        check(
            key is None or key in params,
            f"{option}: {key!r} is not a swept key; the sweep varies {', '.join(keys) or 'nothing'}",
        )
    check(rows is None or rows != cols, f"--rows and --cols: both name {rows!r}; give two different keys")
    if rows is None and len(keys) > 1:  # the first key not across goes down
        rows = next(k for k in keys if k != cols)
    row_keys = [rows] if rows else []
    col_keys = ([cols] if cols else []) + [k for k in keys if k not in row_keys and k != cols]
    return row_keys, col_keys


def _label(keys: list[str], values: tuple) -> str:
    if len(keys) == 1:
        return str(values[0])
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values))


def _fit(text: str, width: int, font) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` px."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _tile(run: dict | None, cell: int, font) -> torch.Tensor:
    """A run's result fitted into a white ``cell × cell`` tile, or a grey tile saying why there is none."""
    tile = torch.ones(1, 3, cell, cell)
    output = None if run is None else run["folder"] / "output.png"
    if output is not None and run["state"] == "done" and output.is_file():
        picture = load_image(output, cell, what="output")
        h, w = picture.shape[-2:]
        top, left = (cell - h) // 2, (cell - w) // 2
        tile[..., top : top + h, left : left + w] = picture
        return tile
    pil = Image.new("RGB", (cell, cell), (210, 210, 210))
    ImageDraw.Draw(pil).text((6, cell // 2 - FONT_PX), "no run" if run is None else run["state"], "black", font)
    return torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1)[None].float() / 255.0


def contact_sheet(sweep, rows: str | None = None, cols: str | None = None, cell: int = 128):
    """The sweep's results in a labelled grid: ``(sheet (PIL image), cells)``.

    ``rows`` / ``cols`` name swept keys (default: the first key not across goes down, the others across); swept
    keys on neither axis are folded into the columns. ``cells`` lists ``{"run", "row", "col", "box": (x0, y0, x1,
    y1)}`` in the sheet's pixels, one per grid cell (``run`` None where no run has that combination).
    """
    check(isinstance(cell, int) and 16 <= cell <= 1024, f"--cell: must be an integer in [16, 1024], got {cell!r}")
    data, runs = _sweep(sweep)
    check(len(runs) > 0, f"{sweep}: the sweep has no runs")
    params = _params(data, runs)
    row_keys, col_keys = _axes(params, rows, cols)
    row_values = list(itertools.product(*[params[k] for k in row_keys]))
    col_values = list(itertools.product(*[params[k] for k in col_keys]))
    by_values = {tuple(r["overrides"].get(k) for k in row_keys + col_keys): r for r in runs}
    font = ImageFont.load_default(size=FONT_PX)

    order = [(rv, cv) for rv in row_values for cv in col_values]
    tiles = torch.cat([_tile(by_values.get(rv + cv), cell, font) for rv, cv in order])
    body = to_pil(grid(tiles, ncols=len(col_values), pad=PAD))

    row_labels = [_label(row_keys, rv) for rv in row_values] if row_keys else []
    label_w = 0
    if row_keys:
        label_w = int(min(3 * cell, max(font.getlength(t) for t in row_labels + [row_keys[0]]) + 2 * PAD))
    header_h = 2 * (FONT_PX + PAD) + PAD
    sheet = Image.new("RGB", (label_w + body.width, header_h + body.height), "white")
    sheet.paste(body, (label_w, header_h))
    draw = ImageDraw.Draw(sheet)
    draw.text((label_w + PAD, PAD), _fit(" × ".join(col_keys), body.width - PAD, font), "black", font)
    if row_keys:
        draw.text((PAD, header_h - FONT_PX - PAD), _fit(row_keys[0], label_w - PAD, font), "black", font)
    cells = []
    for j, cv in enumerate(col_values):
        x = label_w + j * (cell + PAD)
        draw.text((x + 2, FONT_PX + 2 * PAD), _fit(_label(col_keys, cv), cell - 2, font), "black", font)
    for i, rv in enumerate(row_values):
        y = header_h + i * (cell + PAD)
        if row_keys:
            draw.text((PAD, y + cell // 2 - FONT_PX // 2), _fit(row_labels[i], label_w - PAD, font), "black", font)
        for j, cv in enumerate(col_values):
            x = label_w + j * (cell + PAD)
            found = by_values.get(rv + cv)
            cells.append(
                {
                    "run": found["name"] if found else None,
                    "row": row_labels[i] if row_keys else "",
                    "col": _label(col_keys, cv),
                    "box": (x, y, x + cell, y + cell),
                }
            )
    return sheet, cells


def _losses(folder: Path) -> tuple[list[float], list[float]] | None:
    path = folder / "losses.csv"
    if not path.is_file():
        return None
    rows = list(csv.DictReader(path.open()))
    totals = [float(r["total"]) for r in rows if r.get("total") not in (None, "")]
    return list(range(len(totals))), totals


def loss_overlay(sweep, path=None) -> Path:
    """Every finished run's total loss per step in one log-scale plot (``losses.png`` in the sweep folder)."""
    _, runs = _sweep(sweep)
    series = {}
    for r in runs:
        curve = _losses(r["folder"]) if r["state"] == "done" else None
        if curve:
            series[f"{r['name']}: " + ", ".join(f"{k}={v}" for k, v in r["overrides"].items())] = curve
    path = Path(path) if path is not None else Path(sweep) / "losses.png"
    atomic_write(path, lambda tmp: overlay_curves(series, tmp), suffix=".png")
    return path


# -- the HTML page --------------------------------------------------------------------------------------------------


def _flat(tree, prefix: str = "") -> dict[str, object]:
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def _base_config(sweep: Path, data: dict) -> dict | None:
    """The sweep's base config (its file and fixed overrides) resolved as a run would; None where it cannot be."""
    config = data.get("config")
    if config is not None and not Path(config).is_file() and (sweep.parent / config).is_file():
        config = str(sweep.parent / config)
    try:
        cfg = load_config(config, [str(o) for o in data.get("overrides") or []])
    except (SemstyleError, OSError):
        return None
    return _flat(OmegaConf.to_container(cfg, resolve=True))


def config_diff(run_config: dict, base: dict) -> list[tuple[str, object, object]]:
    """``(key, base value, run value)`` for every key whose value differs, cosmetic keys (out_dir, ...) left out."""
    keys = sorted(set(run_config) | set(base))
    return [
        (k, base.get(k, "—"), run_config.get(k, "—"))
        for k in keys
        if k.split(".")[0] not in COSMETIC_KEYS and base.get(k, "—") != run_config.get(k, "—")
    ]


def _png_uri(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
th { background: #f2f2f2; cursor: pointer; user-select: none; }
td:first-child, th:first-child, .diff td { text-align: left; }
th[data-order="asc"]::after { content: " ▲"; } th[data-order="desc"]::after { content: " ▼"; }
.run { display: flex; gap: 1em; align-items: flex-start; margin-bottom: 1em; }
.failed { color: #b00; }
"""

# Sort a table by the clicked column: numerically where both cells are numbers, else as text.
_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var up = th.dataset.order !== "asc";
    th.closest("tr").querySelectorAll("th").forEach(function (other) { delete other.dataset.order; });
    th.dataset.order = up ? "asc" : "desc";
    var key = function (row) {
      var cell = row.cells[column];
      return cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent;
    };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
      var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return up ? order : -order;
    }).forEach(function (row) { body.appendChild(row); });
  });
});
"""


def _cell(value) -> str:
    if isinstance(value, float):
        return f'<td data-value="{value!r}">{value:.4g}</td>'
    if isinstance(value, int):
        return f'<td data-value="{value}">{value}</td>'
    return f"<td>{html.escape('' if value is None else str(value))}</td>"


def _metrics_table(rows: list[dict]) -> str:
    columns = metrics.columns(rows)
    head = "".join(
        f'<th title="{"higher" if c in metrics.HIGHER_IS_BETTER else "lower"} is better">{html.escape(c)}</th>'
        if metrics.scored(c)
        else f"<th>{html.escape(c)}</th>"
        for c in columns
    )
    body = []
    for row in rows:
        name = html.escape(str(row.get("run", "")))
        cells = [f'<td><a href="#run-{name}">{name}</a></td>'] + [_cell(row.get(c)) for c in columns[1:]]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="sortable" id="metrics"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _run_section(sweep: Path, run: dict, base: dict | None, thumb: int) -> str:
    name = html.escape(run["name"])
    folder = run["folder"]
    try:  # a folder outside the sweep gets no link: the page must stay inside its folder
        link = folder.resolve().relative_to(sweep.resolve()).as_posix() + "/" if folder.is_dir() else None
    except ValueError:
        link = None
    title = f'<a href="{html.escape(link)}">{name}</a>' if link else name
    parts = [f'<h3 id="run-{name}">{title}</h3><div class="run">']
    output = folder / "output.png"
    if run["state"] == "done" and output.is_file():
        parts.append(f'<img alt="result of run {name}" src="{_png_uri(to_pil(load_image(output, thumb)))}">')
    parts.append("<div>")
    swept = ", ".join(f"{k}={v}" for k, v in run["overrides"].items())
    parts.append(f"<p>{html.escape(swept)}<br>state: {html.escape(run['state'])}</p>")
    if run.get("error"):
        parts.append(f'<p class="failed">{html.escape(str(run["error"]))}</p>')
    config = folder / "config.yaml"
    if base is not None and config.is_file():
        diff = config_diff(_flat(OmegaConf.to_container(OmegaConf.load(config), resolve=True)), base)
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(a))}</td><td>{html.escape(str(b))}</td></tr>"
            for k, a, b in diff
        )
        parts.append(
            '<table class="diff"><thead><tr><th>key</th><th>base config</th><th>this run</th></tr></thead>'
            f"<tbody>{rows or '<tr><td colspan=3>same as the base config</td></tr>'}</tbody></table>"
        )
    parts.append("</div></div>")
    return "".join(parts)


def report(
    sweep,
    rows: str | None = None,
    cols: str | None = None,
    cell: int = 128,
    size: int = METRIC_SIZE,
    device: str = "cpu",
) -> Path:
    """Write ``sheet.png``, ``losses.png``, ``metrics.csv``/``.md`` and ``report.html`` into the sweep folder;
    returns the HTML page's path. Runs without ``metrics.json`` are evaluated first (at ``size`` on ``device``)."""
    sweep = Path(sweep)
    data, runs = _sweep(sweep)
    sheet, _ = contact_sheet(sweep, rows, cols, cell)  # checks --rows/--cols before any heavy work
    atomic_write(sweep / "sheet.png", lambda tmp: sheet.save(tmp, format="PNG"), suffix=".png")
    table = metrics.collect([sweep], size=size, device=device) if any(r["state"] == "done" for r in runs) else []
    overlay = loss_overlay(sweep)
    base = _base_config(sweep, data)
    states = {s: sum(r["state"] == s for r in runs) for s in ("done", "failed", "pending", "running")}
    summary = ", ".join(f"{n} {s}" for s, n in states.items() if n)
    title = f"sweep {sweep.resolve().name}"
    # a sweep with no finished run has no tables: never a link to a missing file
    names = ("metrics.csv", "metrics.md", "sheet.png", "losses.png")
    files = ", ".join(f'<a href="{n}">{n}</a>' for n in names if (sweep / n).is_file())
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>base config: <code>{html.escape(str(data.get("config")))}</code>
{html.escape(" ".join(str(o) for o in data.get("overrides") or []))};
launcher: {html.escape(str(data.get("launcher", "?")))}; {len(runs)} runs: {html.escape(summary)}.
Files: {files}.</p>
<h2>Contact sheet</h2>
<img alt="contact sheet" src="{_png_uri(sheet)}">
<h2>Metrics</h2>
<p>Click a column to sort. Formulas: <code>semstyle.experiments.metrics</code> (docs/experiments.md).</p>
{_metrics_table(table)}
<h2>Loss curves</h2>
<img alt="loss curves of every run" src="{_png_uri(Image.open(overlay))}">
<h2>Runs</h2>
{"".join(_run_section(sweep, r, base, min(cell, 192)) for r in runs)}
{"" if base is not None else "<p>The base config could not be loaded: no config differences shown.</p>"}
<script>{_SCRIPT}</script>
</body>
</html>
"""
    path = sweep / "report.html"
    atomic_write(path, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"), suffix=".html")
    return path


__all__ = ["contact_sheet", "loss_overlay", "report", "config_diff"]
