"""The real dashboard in a real browser: Playwright drives Debian's Chromium against `streamlit run app.py`."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from core import results
from core.config import CACHE_ENV, REPO_ROOT, results_db_path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(demo_run):
    yield from serve(demo_run[0])


@pytest.fixture(scope="module")
def audio_server(audio_run):
    yield from serve(audio_run[0])


def serve(cache):
    """`streamlit run app.py` on the result store in `cache`; yields its URL, stops it afterwards."""
    port = free_port()
    env = {**os.environ, CACHE_ENV: str(cache)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"streamlit did not start: {proc.stdout.read()}")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def page():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing; scripts/setup.sh --browser installs it")
        pytest.skip("Debian's chromium is not installed (run scripts/setup.sh --browser as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield tab
        browser.close()


def test_scale_page_shows_the_curve(server, page):
    page.goto(f"{server}/scale?k=10")
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.wait_for(timeout=60_000)
    page.locator(".js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=30_000)
    assert page.locator(".js-plotly-plot").first.locator(".scatterlayer .trace").count() == 3
    assert "mutual kNN" in page.locator(".js-plotly-plot").first.inner_text()


def test_neighbours_page_shows_neighbour_images(server, page, demo_run):
    cache, run_id = demo_run
    sample = results.samples(run_id, results_db_path(cache)).iloc[3]
    page.goto(f"{server}/neighbours?sample={sample.sample_id}&k=10")
    page.get_by_text("Vision space").wait_for(timeout=60_000)
    images = page.locator('[data-testid="stImage"] img')
    images.nth(20).wait_for(timeout=30_000)
    assert images.count() == 21
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stImage\"] img')].every(i => i.complete && i.naturalWidth > 0)",
        timeout=30_000)
    assert page.get_by_text(sample.caption).first.is_visible()
    assert f"sample={sample.sample_id}".replace("/", "%2F") in page.url or f"sample={sample.sample_id}" in page.url


def test_neighbours_page_plays_sound_effects(audio_server, page):
    page.goto(f"{audio_server}/neighbours?k=5")
    page.get_by_text("Audio space").wait_for(timeout=60_000)
    players = page.locator("audio")
    players.nth(10).wait_for(state="attached", timeout=30_000)
    assert players.count() == 11  # the sample and its 5 neighbours in each space
    # every player has loaded its Ogg file far enough to know how long it is
    page.wait_for_function("() => [...document.querySelectorAll('audio')].every(a => a.duration > 0)", timeout=30_000)
    spectrograms = page.locator('[data-testid="stImage"] img')
    spectrograms.nth(10).wait_for(timeout=30_000)
    assert spectrograms.count() == 11


def test_models_page_draws_the_grid_with_links_to_each_curve(server, page):
    page.goto(f"{server}/models?k=10")
    page.locator(".js-plotly-plot .heatmaplayer").first.wait_for(timeout=60_000)
    assert "efficientnet_lite0" in page.locator(".js-plotly-plot").first.inner_text()
    page.get_by_text("python -m core lm-quality").wait_for(timeout=30_000)  # no language model measured in the demo
