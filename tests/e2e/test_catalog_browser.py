"""The browser pages in a real headless Chromium (Debian's, driven by Playwright).

A person opens the service catalog, gives a token, runs "Try it out" on the wine model
and sees the 200 answer; the status page shows the deployments live; the management
API's Swagger UI works with the same token form. Screenshots of the catalog and the
status page are saved under ``test-artifacts/``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT, SEED_COLUMNS, SEED_ROW, wait_until

pytestmark = pytest.mark.e2e
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def stack(mlgate_module, demo_models):
    proc = mlgate_module(["-f", str(EXAMPLES / "wine-v1.yaml"),
                          "-f", str(EXAMPLES / "wine-v2.yaml")])
    proc.wait_state("wine-v1", "Ready")
    proc.wait_state("wine-v2", "Ready")
    return proc


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "chromium is missing: `make test-tools` installs it"
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser):
    """A fresh tab (its own sessionStorage) that fails the test on any script error."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, errors


def give_token(page, token: str) -> None:
    page.fill("#mlgate-token-input", token)
    page.click("#mlgate-token-use")


def test_try_it_out_in_the_service_catalog_calls_the_model_through_the_gateway(stack, page):
    page.goto(f"{stack.url}/service-catalog/")
    give_token(page, stack.token)
    page.click('#catalog-list li[data-deployment="wine-v1"] button')
    page.wait_for_selector("text=wine-v1: wine")
    page.click("#operations-default-invoke")
    page.click("button.try-out__btn")
    page.click("button.execute")
    status = page.wait_for_selector(".live-responses-table tbody .response-col_status")
    assert status.inner_text().strip() == "200"
    body = page.inner_text(".live-responses-table tbody .response-col_description")
    assert '"prediction"' in body and '"quality"' in body
    assert "model-name: wine" in body and "request-id:" in body
    assert f"{stack.url}/model/wine-v1/api/model/invoke" in page.inner_text(
        ".request-url")
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".live-responses-table").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.evaluate("window.scrollBy(0, -140)")
    page.screenshot(path=str(ARTIFACTS / "service-catalog.png"))


def test_the_catalog_asks_for_a_token_and_names_a_bad_one(stack, page):
    page.goto(f"{stack.url}/service-catalog/")
    page.wait_for_selector("text=Give a token above to see the deployments.")
    give_token(page, "not-a-token")
    message = page.wait_for_selector("#mlgate-token-message.mlgate-token-error")
    assert message.inner_text().startswith("401: ")
    assert page.locator("#catalog-list button").count() == 0


def test_a_new_deployment_appears_without_a_restart_and_one_without_examples_says_why(
        stack, page, tmp_path):
    plain = tmp_path / "wine-plain"
    shutil.copytree(EXAMPLES / "models" / "wine-v1", plain)
    mlmodel = plain / "MLmodel"
    mlmodel.write_text(re.sub(r"saved_input_example_info:\n(  .*\n)+", "",
                              mlmodel.read_text()))
    for name in ("input_example.json", "serving_input_example.json"):
        (plain / name).unlink()
    page.goto(f"{stack.url}/service-catalog/")
    give_token(page, stack.token)
    page.wait_for_selector('#catalog-list li[data-deployment="wine-v2"]')
    with stack.client() as client:
        created = client.post("/api/v1/model/deployment", json={
            "id": "wine-plain", "spec": {"image": f"file://{plain}",
                                         "predictor": "odahu-ml-server", "minReplicas": 1}})
        assert created.status_code == 201, created.text
    try:
        stack.wait_state("wine-plain", "Ready")
        item = page.wait_for_selector('#catalog-list li.unlisted[data-deployment="wine-plain"]')
        assert "provides no input/output examples" in item.inner_text()
        with stack.client() as client:
            listing = client.get("/service-catalog/api/models").json()["deployments"]
            refused = client.get("/service-catalog/api/models/wine-plain")
        assert [(d["id"], d["listed"]) for d in listing] == [
            ("wine-plain", False), ("wine-v1", True), ("wine-v2", True)]
        assert refused.status_code == 404
        assert refused.json()["reason"] == "not_in_catalog"
    finally:
        with stack.client() as client:
            client.delete("/api/v1/model/deployment/wine-plain")
        wait_until(lambda: stack.deployment("wine-plain") is None, 120,
                   what="wine-plain to be deleted")


def test_the_status_page_shows_every_deployment_live(stack, page):
    page.goto(f"{stack.url}/status/")
    give_token(page, stack.token)
    with stack.client() as client:
        for i in range(40):
            dep = "wine-v1" if i % 4 else "wine-v2"
            resp = client.post(f"/model/{dep}/api/model/invoke",
                               json={"columns": SEED_COLUMNS, "data": [SEED_ROW]})
            assert resp.status_code == 200
    row = 'tr[data-deployment="wine-v1"]'
    page.wait_for_selector(f"{row} .state-Ready")
    page.wait_for_function(
        "sel => { const c = document.querySelector(sel + ' .p99');"
        " return c && c.textContent !== '\u2013'; }", arg=row)  # not the dash
    assert page.inner_text(f"{row} .replicas") == "1 / 1"
    assert float(page.inner_text(f"{row} .rate")) > 0
    assert page.inner_text('tr[data-deployment="wine-v2"] .model') == "wine 2.0"
    assert page.locator("#charts canvas").count() >= 4  # two charts per deployment
    assert "stored" in page.inner_text("#storage")
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(2500)  # let one more poll draw the charts before the picture
    page.screenshot(path=str(ARTIFACTS / "status.png"))


def test_the_management_swagger_ui_uses_the_token_form(stack, page):
    page.goto(f"{stack.url}/swagger/index.html")
    page.wait_for_selector("#mlgate-token-input")
    give_token(page, stack.token)
    page.click("#operations-Deployment-listModelDeployment")
    page.click("button.try-out__btn")
    page.click("button.execute")
    status = page.wait_for_selector(".live-responses-table tbody .response-col_status")
    assert status.inner_text().strip() == "200"
    assert '"wine-v1"' in page.inner_text(".live-responses-table tbody .response-col_description")


def test_the_status_page_charts_model_quality_per_deployment_and_per_route_variant(stack, page):
    with stack.client() as client:
        created = client.post("/api/v1/model/route", json={"id": "status-ab", "spec": {
            "urlPrefix": "/custom/status-ab", "modelDeployments": [
                {"mdName": "wine-v1", "weight": 50}, {"mdName": "wine-v2", "weight": 50}]}})
        assert created.status_code == 201, created.text
        wait_until(lambda: client.get("/api/v1/model/route/status-ab").json()["status"][
            "state"] == "Ready", 30, what="the route")
        for i in range(16):
            resp = client.post("/custom/status-ab/api/model/invoke", headers={
                "Request-ID": f"page-{i}"}, json={"columns": SEED_COLUMNS, "data": [SEED_ROW]})
            assert resp.status_code == 200
            version = resp.headers["model-version"]
            fb = client.post("/feedback/model/", json={"truthful": 5 + i % 3}, headers={
                "x-model-name": "wine", "x-model-version": version, "Request-ID": f"page-{i}"})
            assert fb.status_code == 200
    page.goto(f"{stack.url}/status/")
    give_token(page, stack.token)
    card = '[data-quality="deployment:wine-v1"]'
    page.wait_for_selector(f"{card} canvas")
    page.wait_for_function(
        "sel => document.querySelector(sel + ' .note').textContent.startsWith('MAE ')",
        arg=card)
    note = page.inner_text(f"{card} .note")
    assert "labelled row(s)" in note and "quality inferred" in note
    assert "MAE" in page.inner_text(f"{card} .u-legend")
    route = '[data-quality="route:status-ab"]'
    page.wait_for_selector(f"{route} canvas")
    legend = page.inner_text(f"{route} .u-legend")
    assert "wine-v1" in legend and "wine-v2" in legend
    assert "labelled" in page.inner_text(f"{route} .note")
    page.select_option("#quality-span", "24h")
    page.wait_for_function("sel => document.querySelector(sel + ' .u-title').textContent"
                           ".includes('15m')", arg=card)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#quality-charts").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(ARTIFACTS / "status-quality.png"))
    with stack.client() as client:
        client.delete("/api/v1/model/route/status-ab")
