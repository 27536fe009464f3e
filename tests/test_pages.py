"""Each dashboard page, run headless through Streamlit's AppTest on a real (small) demo run."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import results
from core.config import CACHE_ENV, REPO_ROOT, results_db_path

APP = str(REPO_ROOT / "app.py")


@pytest.fixture
def app(demo_run, monkeypatch):
    cache, _ = demo_run
    monkeypatch.setenv(CACHE_ENV, str(cache))

    def open_page(page: str, **query) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params.update(query)
        at.switch_page(f"dashboard/pages/{page}.py") if page != "home" else None
        return at.run()

    return open_page


def plotted(values) -> list:
    """Plotly's JSON arrays, plain or base64-packed ({"dtype", "bdata"})."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def markdown_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown) + "\n".join(c.value for c in at.caption)


def test_home_states_what_is_measured_and_the_headline(app, demo_run):
    at = app("home")
    assert not at.exception
    assert "Mutual kNN" in markdown_text(at)
    metrics = {m.label: m.value for m in at.metric}
    best = results.best_pairs(demo_run[1], results_db_path(demo_run[0])).set_index("k").score
    assert metrics["mutual kNN, k = 10"] == f"{best[10]:.3f}"


def test_scale_page_draws_the_curve_with_baselines(app):
    at = app("scale")
    assert not at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the curve and the layer-pair heatmap
    curve = json.loads(charts[0].proto.spec)
    assert [trace["name"] for trace in curve["data"]] == ["mutual kNN", "shuffled pairs (null)", "chance k/(n−1)"]
    assert curve["layout"]["xaxis"]["type"] == "log"
    assert plotted(curve["data"][0]["x"]) == [16, 32, 60]
    assert plotted(curve["data"][2]["y"]) == pytest.approx([10 / 15, 10 / 31, 10 / 59])


def test_scale_page_switches_k(app):
    at = app("scale", k="1")
    assert at.radio[0].value == 1
    at.radio[0].set_value(10).run()
    assert not at.exception
    assert at.query_params["k"] == "10", "the link follows the view"


def test_neighbours_page_shows_the_sample_and_both_neighbour_lists(app, demo_run):
    cache, run_id = demo_run
    table = results.samples(run_id, results_db_path(cache))
    target = table.iloc[7]
    at = app("neighbours", sample=target.sample_id, k="10")
    assert not at.exception
    assert at.selectbox[0].value == 7
    assert len(at.get("image")) == 1 + 2 * 10  # the sample and k neighbours in each space
    view = results.sample_view(run_id, 7, 10, path=results_db_path(cache))
    assert at.metric[0].value == f"{view['overlap']:.2f}"
    text = markdown_text(at)
    assert "Vision space" in text and "Text space" in text
    assert text.count("shared]") == 2 * len(view["shared"])


def test_neighbours_search_filters_captions(app, demo_run):
    at = app("neighbours", k="1")
    at.text_input[0].set_value("coin").run()
    assert not at.exception
    labels = at.selectbox[0].options
    assert 1 < len(labels) < 60
    assert all("coin" in label.lower() for label in labels[1:]), labels  # [0] may be the sample on view


def test_neighbours_random_button_picks_a_sample(app):
    at = app("neighbours")
    seen = {at.selectbox[0].value}
    for _ in range(5):
        at.button[0].click().run()
        seen.add(at.selectbox[0].value)
    assert not at.exception
    assert len(seen) > 1


def test_empty_store_offers_to_compute_the_demo(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert at.button[0].label == "Compute the demo now"


def test_captions_are_escaped():
    from dashboard.common import escape_md

    assert escape_md("A coin ($.25) *called* [a](link) <b>") == r"A coin \(\$\.25\) \*called\* \[a\]\(link\) \<b\>"


def test_compute_button_runs_the_demo_job_and_shows_it(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("PLATO_DEMO_LIMIT", "20")
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.button[0].click().run()
    assert not at.exception
    assert results.latest_run_id(results_db_path(tmp_path)) is not None
    assert [m.label for m in at.metric] == ["mutual kNN, k = 1", "mutual kNN, k = 10"]
