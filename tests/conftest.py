"""Shared fixtures. Tests that need ../shared/data (CI has it, a user's clone does not) use `shared_data`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one thread per worker (`make test` runs two), set before torch loads; the processes the tests start inherit it
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import semstyle  # noqa: F401  (before torch: it sets GOMP_SPINCOUNT for NNPACK's threads)

# isort: split
import torch

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
SHARED = ROOT.parent / "shared" / "data"

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"needs the shared test material in {SHARED} (present in CI, not in a user's clone)"
)


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    return ASSETS


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"needs the shared test material in {SHARED} (present in CI, not in a user's clone)")
    return SHARED


CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).is_file()), None)
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file() else None
)


@pytest.fixture()
def chromium():
    """Debian's headless Chromium driven by Selenium (never a downloaded browser), closed after the test; skips with
    a reason when Chromium, its driver or Selenium is missing (CI installs them: .ci/run)."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs the system Chromium and its driver (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # the machine's network is closed: without the background-networking flags Chromium's connections are refused
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
