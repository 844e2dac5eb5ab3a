"""Fixtures of the console's browser test: the cluster `run.sh` started (its URL, token and
demo sink), a small API client, and one headless Chromium driven through selenium."""

import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

WIDTH, HEIGHT = 1280, 800
WAIT = 20  # seconds, for any one condition


def need(name):
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run the browser test through tests/console/run.sh", returncode=2)
    return value


class Api:
    """The HTTP API with the test's admin token."""

    def __init__(self, base, token):
        self.base = base
        self.token = token

    def call(self, method, path, body=None, base=None, token=None):
        headers = {"Authorization": f"Bearer {token or self.token}"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        req = urllib.request.Request((base or self.base) + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read()
                return r.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            text = e.read()
            return e.code, (json.loads(text) if text else None)

    def ok(self, method, path, body=None, expect=(200, 201, 202, 204)):
        status, data = self.call(method, path, body)
        assert status in expect, f"{method} {path}: {status} {data}"
        return data

    def job_names(self):
        names, cursor = [], None
        for _ in range(100):
            q = "?limit=500" + (f"&cursor={cursor}" if cursor else "")
            page = self.ok("GET", f"/v1/jobs{q}")
            names += [j["name"] for j in page["jobs"]]
            cursor = page["next_cursor"]
            if not cursor:
                return names
        raise AssertionError("GET /v1/jobs never ended")


class Sink:
    """The demo sink of `belfry dev`: scripted answers and the deliveries it received."""

    def __init__(self, base):
        self.base = base

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read()
            return json.loads(text) if text else None

    def answer(self, path, status):
        self.call("POST", "/_sink/answers", {"path": path, "status": status})

    def clear_answers(self):
        self.call("DELETE", "/_sink/answers")

    def deliveries(self):
        return self.call("GET", "/_sink/deliveries")


class Console:
    """The console in one browser tab, with the waits the tests share."""

    def __init__(self, driver, base, token, shots):
        self.driver = driver
        self.base = base
        self.token = token
        self.shots = shots

    def wait(self, condition, message="", timeout=WAIT):
        # A page re-renders parts of itself (refreshes, paging): an element read mid-way is retried.
        ignored = (NoSuchElementException, StaleElementReferenceException)
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1, ignored_exceptions=ignored).until(condition, message)

    def css(self, selector):
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector):
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def present(self, selector, timeout=WAIT):
        return self.wait(EC.presence_of_element_located((By.CSS_SELECTOR, selector)), f"no {selector}", timeout)

    def visible(self, selector, timeout=WAIT):
        return self.wait(EC.visibility_of_element_located((By.CSS_SELECTOR, selector)), f"{selector} not visible", timeout)

    def gone(self, selector, timeout=WAIT):
        return self.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, selector), f"{selector} still there", timeout)

    def click(self, selector):
        el = self.wait(EC.element_to_be_clickable((By.CSS_SELECTOR, selector)), f"{selector} not clickable")
        # Centred, so that the form's sticky action bar never covers what is clicked.
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
        el.click()
        return el

    def sign_in(self, token=None):
        field = self.present("#token-input")
        field.clear()
        field.send_keys(token or self.token)
        self.click("#sign-in-button")
        self.wait(lambda d: d.find_element(By.ID, "main").get_attribute("data-page") != "sign-in", "still on the sign-in page")

    def open(self, path, base=None):
        """Loads `path` as a fresh page (the node serves the shell), signing in when asked."""
        self.driver.get((base or self.base) + path)
        self.wait(lambda d: d.find_element(By.ID, "main").get_attribute("data-page"), "the console did not start")
        if self.css("#main").get_attribute("data-page") == "sign-in":
            self.sign_in()

    def confirm(self, cancel=False):
        """Answers the confirmation dialog; returns its text."""
        dialog = self.visible("#confirm-dialog")
        text = dialog.text
        self.click("#confirm-cancel" if cancel else "#confirm-ok")
        self.gone("#confirm-dialog")
        return text

    def path(self):
        return self.driver.execute_script("return location.pathname")

    def shot(self, name):
        if self.shots:
            self.shots.mkdir(parents=True, exist_ok=True)
            self.driver.execute_script("window.scrollTo(0, 0)")
            self.driver.save_screenshot(str(self.shots / f"{name}.png"))


@pytest.fixture(scope="session")
def api():
    return Api(need("BELFRY_URL"), need("BELFRY_TOKEN"))


@pytest.fixture(scope="session")
def sink():
    return Sink(need("BELFRY_SINK_URL"))


@pytest.fixture(scope="session")
def nodes():
    return need("BELFRY_NODES").split()


@pytest.fixture(scope="session")
def driver():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    assert chromium and chromedriver, "chromium and chromedriver must be on PATH (run.sh installs them)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={WIDTH},{HEIGHT}",
                "--lang=en-US", "--disable-gpu", "--no-first-run", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    # The page itself gets exactly 1280×800, whatever the headless window's frame takes.
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
    d.set_page_load_timeout(30)
    d.set_script_timeout(30)
    yield d
    d.quit()


@pytest.fixture(scope="session")
def console(driver):
    shots = os.environ.get("BELFRY_CONSOLE_SHOTS")
    c = Console(driver, need("BELFRY_URL"), need("BELFRY_TOKEN"), Path(shots) if shots else None)
    # One check up front, so that a node serving some other page fails the run at once
    # instead of every test waiting out its timeouts.
    driver.get(c.base + "/")
    try:
        c.wait(lambda d: d.find_element(By.ID, "main").get_attribute("data-page"), timeout=WAIT)
    except Exception:
        pytest.exit("the node's page did not start the console (#main never got a data-page): is the binary built "
                    "with this console? BELFRY_CONSOLE_DIR=crates/node/console serves the work tree's files", returncode=1)
    return c
