"""Reports of a sweep (semstyle.experiments.report, ``semstyle eval`` / ``semstyle report``) on a sweep of real
32 px runs: the contact sheet's labelled cells, the metrics tables, and an HTML page that is valid, references only
files inside the sweep folder, and sorts its table in headless Chromium."""

from __future__ import annotations

import csv
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from semstyle.cli import main
from semstyle.core.image import load_image
from semstyle.errors import SemstyleError
from semstyle.experiments import report
from semstyle.experiments.sweep import load_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {"style_weight": ["1e-7", "1e-5"], "laplacian.pool_sizes": ["[4]", "[8]"]}
BASE = ["size=32", "scales=[]", "steps=2", "precision=fp32", "laplacian.weight=100"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A 2 x 2 sweep of real 32 px runs, in this process (Hydra's basic launcher): two finish, two fail. Runs 001
    and 003 (the [8] pools) cannot start: an unreadable checkpoint waits in their .partial folders, as a crash can
    leave one (a real failure at run time, which no check before the sweep can see)."""
    root = tmp_path_factory.mktemp("report") / "sweep"
    for name in ("001", "003"):
        (root / "runs" / f"{name}.partial").mkdir(parents=True)
        (root / "runs" / f"{name}.partial" / "checkpoint.safetensors").write_bytes(b"not a checkpoint")
    return run_sweep(ROOT / "configs" / "default.yaml", PARAMS, root, launcher="basic", overrides=BASE)


def test_contact_sheet_has_a_labelled_cell_per_combination(sweep):
    sheet, cells = report.contact_sheet(sweep, rows="style_weight", cols="laplacian.pool_sizes", cell=40)
    names = [r["name"] for r in load_sweep(sweep)["runs"]]
    assert [(c["row"], c["col"], c["run"]) for c in cells] == [
        ("1e-7", "[4]", names[0]),
        ("1e-7", "[8]", names[1]),
        ("1e-5", "[4]", names[2]),
        ("1e-5", "[8]", names[3]),
    ]
    pixels = np.asarray(sheet).astype(float) / 255
    for c in (cells[0], cells[2]):
        x0, y0, x1, y1 = c["box"]
        picture = load_image(sweep / "runs" / c["run"] / "output.png", 40)[0].permute(1, 2, 0).numpy()
        h, w = picture.shape[:2]
        top, left = y0 + (40 - h) // 2, x0 + (40 - w) // 2
        assert np.abs(pixels[top : top + h, left : left + w] - picture).mean() < 0.01
    for c in (cells[1], cells[3]):  # the failed runs: grey tiles, not pictures
        x0, y0, x1, y1 = c["box"]
        assert abs(pixels[y0 + 2 : y0 + 8, x0 + 2 : x1 - 2].mean() - 210 / 255) < 0.01
    # the other way round: the sheet is transposed
    _, turned = report.contact_sheet(sweep, rows="laplacian.pool_sizes", cols="style_weight", cell=40)
    assert [c["run"] for c in turned] == [names[0], names[2], names[1], names[3]]
    with pytest.raises(SemstyleError, match="--rows: 'seed' is not a swept key; the sweep varies style_weight"):
        report.contact_sheet(sweep, rows="seed")


class _Page(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input", "col", "source"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.urls, self.ids = [], [], [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.urls += [attrs[a] for a in ("src", "href") if a in attrs]
        self.ids.add(attrs.get("id"))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"</{tag}> does not close the open element")


@pytest.fixture(scope="module")
def page(sweep):
    return report.report(sweep, rows="style_weight", cols="laplacian.pool_sizes", cell=40, size=48)


def test_report_writes_valid_self_contained_html(sweep, page):
    text = page.read_text()
    parser = _Page()
    parser.feed(text)
    parser.close()
    assert text.startswith("<!DOCTYPE html>") and not parser.errors and parser.stack == []
    for url in parser.urls:
        if url.startswith("#"):
            assert url[1:] in parser.ids, url
        elif not url.startswith("data:image/png;base64,"):
            assert not urlparse(url).scheme and not url.startswith("/"), url
            target = (sweep / unquote(url)).resolve()
            assert target.exists() and sweep.resolve() in target.parents, url
    assert "http" not in text  # no script, style, font or picture from the network
    assert text.count("data:image/png;base64,") == 2 + 2  # sheet, loss overlay, the two results
    # each run's config differs from the base config in its swept keys only
    assert "<td>style_weight</td><td>1e-06</td><td>1e-07</td>" in text
    assert "checkpoint.safetensors cannot be read" in text  # the failed runs say why
    rows = list(csv.DictReader((sweep / "metrics.csv").open()))
    names = [r["name"] for r in load_sweep(sweep)["runs"]]
    assert [r["run"] for r in rows] == [names[0], names[2]]
    assert all(float(r["ssim"]) > 0 and r["style_weight"] for r in rows)
    for name in ("sheet.png", "losses.png", "metrics.md"):
        assert (sweep / name).is_file()


def test_eval_and_report_commands(sweep, page, capsys):
    first = load_sweep(sweep)["runs"][0]["name"]
    assert main(["eval", str(sweep), str(sweep / "runs" / first), "--size", "48"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| run | style_weight | laplacian.pool_sizes | ssim ↑") and out.count(f"| {first} |") == 2
    assert main(["report", str(sweep), "--rows", "nope"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "semstyle: error: --rows: 'nope' is not a swept key; the sweep varies style_weight, laplacian.pool_sizes"
    ]


@pytest.mark.slow
def test_report_sorts_in_headless_chromium(page, chromium):
    from selenium.webdriver.common.by import By  # selenium is there: the chromium fixture skips without it

    driver = chromium
    driver.get(page.as_uri())
    assert driver.execute_script("return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    headers = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#metrics th")]
    column = headers.index("ssim")

    def ssim_column():
        cells = driver.find_elements(By.CSS_SELECTOR, f"#metrics tbody td:nth-child({column + 1})")
        return [float(td.get_attribute("data-value")) for td in cells]

    driver.find_elements(By.CSS_SELECTOR, "#metrics th")[column].click()
    assert ssim_column() == sorted(ssim_column())
    driver.find_elements(By.CSS_SELECTOR, "#metrics th")[column].click()
    assert ssim_column() == sorted(ssim_column(), reverse=True)
