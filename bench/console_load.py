"""Times the console with many jobs: its API calls (curl-like, through a follower) and its pages
in headless Chromium, against a running cluster that already holds the jobs.

    bench/console_load.py --endpoint http://127.0.0.1:18802 --token "$BELFRY_TOKEN"

Runs under tests/console/.venv (selenium); prints one line per call and page, three runs each.
"""

import argparse
import shutil
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CALLS = [
    "/v1/jobs?limit=50",
    "/v1/jobs?limit=50&cursor=job-050000",
    "/v1/jobs?limit=50&prefix=job-0999",
    "/v1/jobs?limit=50&paused=true",
    "/v1/jobs?limit=50&failing=true",
    "/v1/stats",
    "/v1/cluster",
]
PAGES = [
    ("/", "#jobs-table tr[data-job]"),
    ("/?prefix=job-0500", "#jobs-table tr[data-job]"),
    ("/jobs/job-050000", "#job-spec"),
]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--token", required=True)
    a = p.parse_args()
    for path in CALLS:
        times = []
        for _ in range(3):
            req = urllib.request.Request(a.endpoint + path, headers={"Authorization": "Bearer " + a.token})
            t = time.perf_counter()
            urllib.request.urlopen(req, timeout=30).read()
            times.append(time.perf_counter() - t)
        print(f"GET {path}: " + ", ".join(f"{x * 1000:.0f} ms" for x in times))
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(a.endpoint + "/cluster")
        driver.execute_script("sessionStorage.setItem('belfry-token', arguments[0])", a.token)
        for path, ready in PAGES:
            times = []
            for _ in range(3):
                t = time.perf_counter()
                driver.get(a.endpoint + path)
                WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ready))
                times.append(time.perf_counter() - t)
            print(f"page {path}: " + ", ".join(f"{x * 1000:.0f} ms" for x in times))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
