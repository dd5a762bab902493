"""The studio in a real browser: Debian's ``chromium`` and ``chromium-driver`` driven by Selenium (never a downloaded
browser). Opens the page, picks a bundled painting, paints a doodle with mouse strokes, presses Paint at 64 px,
waits for the result and checks that its regions follow the strokes. Skips with a reason when Chromium, its driver,
Selenium or the studio extra is missing (CI installs them: .ci/run)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

from semstyle.core import semantic


def _hex(h: str) -> tuple[int, int, int]:
    return tuple(int(h[i : i + 2], 16) for i in (1, 3, 5))


@pytest.fixture()
def browser(chromium):
    return chromium


@pytest.fixture()
def studio(tmp_path):
    for module in ("starlette", "uvicorn", "python_multipart"):
        pytest.importorskip(module, reason="the studio extra is not installed (pip install '.[studio]')")
    from semstyle.studio.app import create_app
    from semstyle.studio.cli import BackgroundServer

    root = tmp_path / "studio"
    with BackgroundServer(create_app(root, frame_every=2)) as url:
        yield url, root


@pytest.mark.slow
def test_paint_a_doodle_in_the_browser(browser, studio, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, root = studio
    d = browser
    d.get(url + "/")
    WebDriverWait(d, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, '#bundled button[data-name="starry_night"]'))
    Select = __import__("selenium.webdriver.support.select", fromlist=["Select"]).Select
    Select(d.find_element(By.ID, "regions")).select_by_visible_text("3")
    d.find_element(By.CSS_SELECTOR, '#bundled button[data-name="starry_night"]').click()
    WebDriverWait(d, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".swatch button.chip")) == 3)
    style = json.loads((root / "styles" / "starry_night-auto3" / "meta.json").read_text())
    means = torch.tensor(style["means"], dtype=torch.float32) / 255
    # the two regions of the painting whose colours differ most: the strokes must bring each where it is painted
    dist = torch.cdist(means, means)
    a, b = divmod(int(dist.argmax()), len(means))
    chips = d.find_elements(By.CSS_SELECTOR, ".swatch button.chip")
    assert [_hex(c.get_attribute("data-color")) for c in chips] == [tuple(p) for p in style["palette"]]

    canvas = d.find_element(By.ID, "doodle")
    w, h = canvas.size["width"], canvas.size["height"]
    # fill the empty canvas with region a, then brush region b over the right half in horizontal strokes
    chips[a].click()
    d.find_element(By.CSS_SELECTOR, 'input[name="tool"][value="fill"]').click()
    ActionChains(d).move_to_element_with_offset(canvas, -w // 4, 0).click().perform()
    chips[b].click()
    d.find_element(By.CSS_SELECTOR, 'input[name="tool"][value="brush"]').click()
    d.execute_script("setSize(64)")
    strokes = ActionChains(d)
    for y in range(-h // 2 + 8, h // 2, max(8, h // 12)):
        strokes.move_to_element_with_offset(canvas, 12, y).click_and_hold().move_by_offset(w // 2 - 14, 0).release()
    strokes.perform()
    # undo takes the last stroke away, redo brings the doodle back as it was
    doodle = "return Array.from(S.labels).join('')"
    before = d.execute_script(doodle)
    d.find_element(By.ID, "undo").click()
    assert d.execute_script(doodle) != before
    d.find_element(By.ID, "redo").click()
    assert d.execute_script(doodle) == before

    size = d.find_element(By.ID, "size")
    size.clear()
    size.send_keys("64")
    Select(d.find_element(By.ID, "preset")).select_by_value("fast")
    d.find_element(By.ID, "steps").send_keys("10")
    d.find_element(By.ID, "paint").click()
    WebDriverWait(d, 300, poll_frequency=0.5).until(
        lambda d: d.find_element(By.ID, "live").get_attribute("data-state") in ("done", "stopped", "error")
    )
    status = d.find_element(By.ID, "status").text
    assert d.find_element(By.ID, "live").get_attribute("data-state") == "done", status
    assert int(d.find_element(By.ID, "live").get_attribute("data-frames") or 0) >= 2  # live frames were shown
    WebDriverWait(d, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .card"))
    time.sleep(0.5)  # the result image loads
    d.save_screenshot(str(tmp_path / "studio.png"))

    run_id = d.find_element(By.ID, "live").get_attribute("data-run")
    # "reopen doodle" brings back the doodle as it was drawn, after a Clear
    d.find_element(By.ID, "clear").click()
    assert d.execute_script(doodle) == "255" * len(before)
    d.find_element(By.CSS_SELECTOR, f'#results .card[data-run="{run_id}"] button.reopen').click()
    WebDriverWait(d, 20).until(lambda d: d.execute_script(doodle) == before)

    folder = root / "runs" / run_id
    # what the browser sent has hard edges: every pixel is a palette colour, opaque, or unpainted (transparent)
    drawn = np.asarray(Image.open(folder / "doodle.png").convert("RGBA"))
    assert set(np.unique(drawn[..., 3]).tolist()) <= {0, 255}
    assert {tuple(c) for c in drawn[drawn[..., 3] == 255][:, :3].tolist()} == {
        tuple(style["palette"][k]) for k in (a, b)
    }
    notes = [li.text for li in d.find_elements(By.CSS_SELECTOR, "#warnings li")]
    assert not any("snapped" in n or "unpainted" in n for n in notes), notes  # nothing was snapped or filled in
    # the strokes reached the map: left quarter region a, right half (the brushed strip, between the strokes'
    # seams) region b
    mapped = np.asarray(Image.open(folder / "doodle_map.png").convert("RGB"))
    H, W = mapped.shape[:2]
    is_a = (mapped == style["palette"][a]).all(-1)
    is_b = (mapped == style["palette"][b]).all(-1)
    assert is_a[:, : W // 4].mean() > 0.99 and is_b[:, W // 2 + 8 :].mean() > 0.9, (is_a.mean(), is_b.mean())
    # and the result paints each drawn region in its painting region's colours (mean colour per region)
    out = torch.from_numpy(np.array(Image.open(folder / "output.png").convert("RGB"))).permute(2, 0, 1)[None] / 255
    masks = torch.from_numpy(np.stack([is_a, is_b]))[None].float()
    result_means = semantic.region_means(out.float(), masks)
    to_style = torch.cdist(result_means, means[[a, b]])
    assert to_style[0, 0] < to_style[0, 1] and to_style[1, 1] < to_style[1, 0], to_style
