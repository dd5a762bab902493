"""Reports of a sweep (semstyle.experiments.report, ``semstyle eval`` / ``semstyle report``) on a sweep of real
32 px runs: the contact sheet's labelled cells, the metrics tables, and an HTML page that is valid, references only
files inside the sweep folder, and sorts its table in headless Chromium."""

from __future__ import annotations

import csv
import itertools
import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from semstyle.api import run
from semstyle.cli import main
from semstyle.core.image import load_image
from semstyle.errors import SemstyleError
from semstyle.experiments import report

PARAMS = {"style_weight": ["1e-7", "1e-5"], "content_layers": ["[conv4_2]", "[conv2_2]"]}
BASE = ["size=32", "scales=[]", "steps=2", "progress=false", "precision=fp32"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A 2 x 2 sweep folder: three real runs, and the fourth recorded as failed (as the sweep runner records one)."""
    root = tmp_path_factory.mktemp("report") / "sweep"
    runs = []
    for i, values in enumerate(itertools.product(*PARAMS.values())):
        name, overrides = f"{i:03d}", dict(zip(PARAMS, values))
        entry = {"name": name, "folder": f"runs/{name}", "overrides": overrides, "state": "done", "error": None}
        if i < 3:
            run(
                "configs/default.yaml",
                BASE + [f"{k}={v}" for k, v in overrides.items()] + [f"out_dir={root}/runs/{name}"],
            )
        else:
            entry.update(state="failed", error="ResourceError: out of memory")
        runs.append(entry)
    sweep = {"config": "configs/default.yaml", "overrides": BASE, "params": PARAMS, "launcher": "joblib", "runs": runs}
    (root / "sweep.json").write_text(json.dumps(sweep))
    return root


def test_contact_sheet_has_a_labelled_cell_per_combination(sweep):
    sheet, cells = report.contact_sheet(sweep, rows="style_weight", cols="content_layers", cell=40)
    assert [(c["row"], c["col"], c["run"]) for c in cells] == [
        ("1e-7", "[conv4_2]", "000"),
        ("1e-7", "[conv2_2]", "001"),
        ("1e-5", "[conv4_2]", "002"),
        ("1e-5", "[conv2_2]", "003"),
    ]
    pixels = np.asarray(sheet).astype(float) / 255
    for c in cells[:3]:
        x0, y0, x1, y1 = c["box"]
        picture = load_image(sweep / "runs" / c["run"] / "output.png", 40)[0].permute(1, 2, 0).numpy()
        h, w = picture.shape[:2]
        top, left = y0 + (40 - h) // 2, x0 + (40 - w) // 2
        assert np.abs(pixels[top : top + h, left : left + w] - picture).mean() < 0.01
    x0, y0, x1, y1 = cells[3]["box"]  # the failed run: a grey tile, not a picture
    assert abs(pixels[y0 + 2 : y0 + 8, x0 + 2 : x1 - 2].mean() - 210 / 255) < 0.01
    # the other way round: the sheet is transposed
    _, turned = report.contact_sheet(sweep, rows="content_layers", cols="style_weight", cell=40)
    assert [c["run"] for c in turned] == ["000", "002", "001", "003"]
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
    return report.report(sweep, rows="style_weight", cols="content_layers", cell=40, size=48)


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
    assert text.count("data:image/png;base64,") == 2 + 3  # sheet, loss overlay, three results
    # each run's config differs from the base config in its swept keys only
    assert "<td>style_weight</td><td>1e-06</td><td>1e-07</td>" in text
    assert "out of memory" in text  # the failed run says why
    rows = list(csv.DictReader((sweep / "metrics.csv").open()))
    assert [r["run"] for r in rows] == ["000", "001", "002"]
    assert all(float(r["ssim"]) > 0 and r["style_weight"] for r in rows)
    for name in ("sheet.png", "losses.png", "metrics.md"):
        assert (sweep / name).is_file()


def test_eval_and_report_commands(sweep, page, capsys):
    assert main(["eval", str(sweep), str(sweep / "runs" / "000"), "--size", "48"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| run | style_weight | content_layers | ssim ↑") and out.count("| 000 |") == 2
    assert main(["report", str(sweep), "--rows", "nope"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "semstyle: error: --rows: 'nope' is not a swept key; the sweep varies style_weight, content_layers"
    ]


CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).is_file()), None)
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file() else None
)


@pytest.mark.slow
def test_report_sorts_in_headless_chromium(page):
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs the system Chromium and its driver (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
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
    finally:
        driver.quit()
