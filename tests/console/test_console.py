"""The operator console in a real browser, against a live `belfry dev` cluster.

The tests run in file order and build on each other (the job the form creates is the one
triggered later); each opens its own pages. Every wait is a bounded WebDriverWait condition.
"""

import json
from collections import Counter

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

PAGE = 50
BULK = 300
YEARLY = {"cron": "0 0 1 1 *"}


def job_rows(console):
    return [r.get_attribute("data-job") for r in console.all("#jobs-table tbody tr[data-job]")]


def wait_jobs_page(console, page):
    console.present(f'#jobs[data-ready="true"][data-page="{page}"]')


def wait_status(console, api, key, status):
    def reached(_):
        code, x = api.call("GET", f"/v1/executions/{key}")
        return code == 200 and x["status"] == status
    console.wait(reached, f"{key} never became {status}", timeout=30)


def test_sign_in_refuses_a_wrong_token_and_signs_out(console):
    console.driver.get(console.base + "/")
    console.present("#token-input").send_keys("bf_wrong_0000000000000000000000000000")
    console.click("#sign-in-button")
    console.wait(lambda d: "refused" in d.find_element(By.ID, "sign-in-message").text, "no refusal message")
    assert console.driver.execute_script("return sessionStorage.getItem('belfry-token')") is None

    console.sign_in()
    console.present('#jobs[data-ready="true"]')
    assert console.css("#nav-jobs").get_attribute("aria-current") == "page"

    console.click("#sign-out")
    console.present("#token-input")
    assert console.driver.execute_script("return sessionStorage.getItem('belfry-token')") is None
    console.sign_in()

    # A token refused mid-session (revoked, say) brings the prompt back with the reason.
    console.driver.execute_script("sessionStorage.setItem('belfry-token', 'bf_revoked_00000000000000000000000000')")
    console.click("#nav-cluster")
    console.wait(lambda d: "401" in d.find_element(By.ID, "sign-in-message").text, "no 401 message")
    console.sign_in()
    assert console.path() == "/cluster", "signing in again returns to the page asked for"


def test_a_viewer_is_told_its_role_may_not_trigger(console, api):
    viewer = api.ok("POST", "/v1/tokens", {"role": "viewer", "name": "console-test-viewer"})["token"]
    console.open("/jobs/demo")
    console.click("#sign-out")
    console.sign_in(viewer)
    console.present("#job-trigger")
    console.click("#job-trigger")
    console.confirm()
    notice = console.visible('[data-test="notice"][data-tone="error"]')
    assert "role may not do this" in notice.text, notice.text
    console.click("#sign-out")
    console.sign_in()


def test_create_a_job_in_the_form_after_a_field_error(console, api, sink):
    console.open("/")
    console.click("#new-job-link")
    console.present("#job-form")
    assert console.path() == "/new-job"
    console.css("#f-name").send_keys("ui-made")
    console.css("#f-target-url").send_keys(sink.base + "/ui-made")

    # The live preview names the bad cron field, and so does the refused create.
    console.css("#f-schedule-cron").send_keys("61 * * * *")
    err = console.visible("#err-schedule-cron")
    console.wait(lambda d: "61" in err.text, "the preview error does not name the minute")
    assert console.css("#f-schedule-cron").get_attribute("aria-invalid") == "true"
    console.click("#job-submit")
    console.visible("#form-error")
    console.wait(lambda d: "61" in d.find_element(By.ID, "err-schedule-cron").text, "no field error after submit")
    assert console.path() == "/new-job"
    assert api.call("GET", "/v1/jobs/ui-made")[0] == 404, "a refused create stored nothing"

    cron = console.css("#f-schedule-cron")
    cron.clear()
    cron.send_keys("*/5 * * * *")
    console.css("#f-schedule-timezone").send_keys("Europe/Berlin")
    console.present('#schedule-preview[data-state="ok"]')
    console.wait(lambda d: "Europe/Berlin" in d.find_element(By.ID, "preview-description").text, "no zone in the description")
    assert len(console.all("#preview-instants li")) == 5
    assert not console.css("#err-schedule-cron").is_displayed()
    console.wait(lambda d: not d.find_element(By.ID, "form-error").is_displayed(), "the banner outlived the field error")

    console.click("#add-header")
    row = console.all('[data-test="header-row"]')[-1]
    row.find_element(By.CSS_SELECTOR, ".header-name").send_keys("X-Trace")
    row.find_element(By.CSS_SELECTOR, ".header-value").send_keys("from-console")
    console.css("#f-target-body").send_keys('{"from": "console"}')
    console.css("#f-retry-max-attempts").send_keys("2")
    console.shot("form")

    # The JSON view shows the spec the fields make.
    console.click("#tab-json")
    spec = json.loads(console.visible("#f-json").get_attribute("value"))
    assert spec["schedule"] == {"cron": "*/5 * * * *", "timezone": "Europe/Berlin"}
    assert spec["target"]["headers"] == {"X-Trace": "from-console"}
    console.click("#tab-form")

    console.click("#job-submit")
    console.wait(lambda d: console.path() == "/jobs/ui-made", "not on the new job's page")
    console.wait(lambda d: d.find_element(By.ID, "job-name").text.startswith("ui-made"), "no job name")
    job = api.ok("GET", "/v1/jobs/ui-made")
    assert job["schedule"] == {"cron": "*/5 * * * *", "timezone": "Europe/Berlin"}
    assert job["target"]["url"] == sink.base + "/ui-made"
    assert job["target"]["body"] == '{"from": "console"}'
    assert job["retry"]["max_attempts"] == 2
    assert "Europe/Berlin" in console.css("#job-description").text
    assert len(console.all("#upcoming-table tbody tr")) == 10


def test_edit_sends_if_match_and_explains_a_conflict(console, api):
    console.open("/jobs/ui-made/edit")
    console.present("#job-form")
    api.ok("POST", "/v1/jobs/ui-made/pause")  # someone else changes the job meanwhile
    grace = console.css("#f-misfire-grace")
    grace.clear()
    grace.send_keys("2m")
    console.click("#job-submit")
    conflict = console.visible("#version-conflict")
    assert "changed this job" in conflict.text
    assert api.ok("GET", "/v1/jobs/ui-made")["misfire"]["grace"] != "2m", "a stale edit changed nothing"

    console.click("#reload-job")
    console.present("#job-form")
    grace = console.css("#f-misfire-grace")
    grace.clear()
    grace.send_keys("2m")
    assert console.css("#f-paused").is_selected(), "the reloaded form shows the pause made meanwhile"
    console.click("#f-paused")
    console.click("#job-submit")
    console.wait(lambda d: console.path() == "/jobs/ui-made", "the edit was not saved")
    job = api.ok("GET", "/v1/jobs/ui-made")
    assert job["misfire"]["grace"] == "2m" and job["paused"] is False


def test_page_through_300_jobs_seeing_each_once(console, api, sink):
    specs = [{"name": f"bulk-{i:03d}", "schedule": YEARLY, "target": {"url": f"{sink.base}/bulk"}} for i in range(BULK)]
    created = api.ok("POST", "/v1/jobs:batch", {"jobs": specs}, expect=(201,))
    assert created["created"] == BULK
    every = api.job_names()

    console.open("/")
    wait_jobs_page(console, 1)
    count = console.css("#jobs-count")
    assert count.get_attribute("data-total") == str(len(every))
    assert count.get_attribute("data-matching") == str(len(every))
    assert count.text == f"{len(every)} jobs"

    pages = []
    for number in range(1, 30):
        names = job_rows(console)
        assert 0 < len(names) <= PAGE
        assert console.css("#page-page").text == f"Page {number}"
        pages.append(names)
        if not console.css("#page-next").is_enabled():
            break
        console.click("#page-next")
        wait_jobs_page(console, number + 1)
    seen = [n for p in pages for n in p]
    assert not [n for n, c in Counter(seen).items() if c > 1], "a job was shown twice"
    assert sorted(seen) == sorted(every), "every job was shown"
    assert len(pages) == -(-len(every) // PAGE)
    assert seen == sorted(seen), "pages go by name"

    console.click("#page-prev")
    wait_jobs_page(console, len(pages) - 1)
    assert job_rows(console) == pages[-2]
    while console.css("#page-prev").is_enabled():
        current = int(console.css("#jobs").get_attribute("data-page"))
        console.click("#page-prev")
        wait_jobs_page(console, current - 1)
    assert job_rows(console) == pages[0]
    assert not console.css("#page-prev").is_enabled()
    console.shot("jobs")


def test_search_by_prefix_and_filter(console, api):
    api.ok("POST", "/v1/jobs/bulk-005/pause")
    total = len(api.job_names())
    console.open("/")
    wait_jobs_page(console, 1)
    console.css("#job-search").send_keys("bulk-01")
    console.present('#jobs-count[data-matching="10"]')
    console.present('#jobs[data-ready="true"]')
    assert job_rows(console) == [f"bulk-{i:03d}" for i in range(10, 20)]
    assert console.css("#jobs-count").text == f"10 of {total} jobs match"

    search = console.css("#job-search")
    search.clear()
    search.send_keys("bulk-00")
    console.wait(lambda d: job_rows(console) == [f"bulk-{i:03d}" for i in range(10)], "the search did not narrow to bulk-00*")
    Select(console.css("#filter-paused")).select_by_value("true")
    console.present('#jobs-count[data-matching="1"]')
    console.present('#jobs[data-ready="true"]')
    assert job_rows(console) == ["bulk-005"]
    assert "paused" in console.css('tr[data-job="bulk-005"]').text

    # The filters live in the address: a reload keeps them.
    console.driver.refresh()
    console.present('#jobs-count[data-matching="1"]')
    assert console.css("#job-search").get_attribute("value") == "bulk-00"
    assert Select(console.css("#filter-paused")).first_selected_option.get_attribute("value") == "true"

    Select(console.css("#filter-paused")).select_by_value("false")
    console.present('#jobs-count[data-matching="9"]')
    console.present('#jobs[data-ready="true"]')
    assert "bulk-005" not in job_rows(console)


def test_trigger_shows_the_new_fire_in_the_history(console, api, sink):
    console.open("/")
    console.css("#job-search").send_keys("ui-made")
    console.present('#jobs-count[data-matching="1"]')
    console.present('#jobs[data-ready="true"]')
    console.click('tr[data-job="ui-made"] a[data-test="job-link"]')
    console.present('#history[data-ready="true"]')
    assert console.path() == "/jobs/ui-made"
    before = {r.get_attribute("data-key") for r in console.all("#history-table tr[data-key]")}

    console.click("#job-trigger")
    assert "Trigger ui-made" in console.confirm()
    key = console.visible("#triggered-link").get_attribute("data-key")
    assert key and key not in before
    console.present(f'#history-table tr[data-key="{key}"]')
    console.present(f'#history-table tr[data-key="{key}"][data-status="succeeded"]', timeout=30)
    assert api.ok("GET", f"/v1/executions/{key}")["status"] == "succeeded"
    got = [d for d in sink.deliveries() if d["key"] == key]
    assert got and got[0]["headers"].get("x-trace") == "from-console", "the header set in the form was delivered"
    console.shot("job")

    console.click(f'#history-table tr[data-key="{key}"] a[data-test="execution-link"]')
    console.wait(lambda d: d.find_element(By.ID, "exec-key").text == key, "not on the fire's page")
    rows = console.all("#attempts-table tbody tr[data-attempt]")
    assert len(rows) == 1 and rows[0].find_element(By.CSS_SELECTOR, '[data-test="attempt-http"]').text == "200"


def test_dead_letters_purge_and_requeue(console, api, sink):
    sink.answer("/broken", 503)
    api.ok("POST", "/v1/jobs", {"name": "dl-broken", "schedule": YEARLY, "target": {"url": f"{sink.base}/broken"},
                                "retry": {"max_attempts": 2, "initial_backoff": "100ms", "max_backoff": "100ms"}})
    keys = [api.ok("POST", "/v1/jobs/dl-broken/trigger")["key"] for _ in range(3)]
    for key in keys:
        wait_status(console, api, key, "dead_lettered")

    console.open("/?failing=true")
    console.present('#jobs[data-ready="true"]')
    failing = job_rows(console)
    assert "dl-broken" in failing and "demo" not in failing

    console.open("/dead-letters?job=dl-broken")
    console.present('#dead-letters[data-ready="true"]')
    for key in keys:
        console.present(f'#dead-letters-table tr[data-key="{key}"]')
    console.shot("dead-letters")

    # Purge one, selected by its checkbox.
    console.click(f'input.dl-check[data-key="{keys[2]}"]')
    console.click("#dl-purge-selected")
    assert "Purge" in console.confirm()
    console.present('#dl-result[data-count="1"]')
    console.gone(f'#dead-letters-table tr[data-key="{keys[2]}"]')
    assert api.call("GET", f"/v1/executions/{keys[2]}")[0] == 404

    # The target works again: a requeue delivers.
    sink.clear_answers()
    console.click(f'#dead-letters-table tr[data-key="{keys[0]}"] [data-test="requeue-one"]')
    console.confirm()
    console.gone(f'#dead-letters-table tr[data-key="{keys[0]}"]')
    wait_status(console, api, keys[0], "succeeded")

    console.open(f"/executions/{keys[1]}")
    console.present("#exec-requeue")
    console.open("/dead-letters?job=dl-broken")
    console.present(f'#dead-letters-table tr[data-key="{keys[1]}"]')
    console.click("#dl-requeue-all")
    assert "dl-broken" in console.confirm()
    console.present('#dl-result[data-count="1"]')
    wait_status(console, api, keys[1], "succeeded")
    console.present("#dead-letters-table tr.empty")

    console.open(f"/executions/{keys[0]}")
    console.present('#exec-status[data-status="succeeded"]')
    http = [c.text for c in console.all('#attempts-table [data-test="attempt-http"]')]
    assert http == ["503", "503", "200"], http
    assert not console.all("#exec-requeue")
    console.shot("execution")


def test_api_values_are_shown_as_text(console, api, sink):
    body = '<img src="x" id="xss-img">'
    api.ok("POST", "/v1/jobs", {"name": "markup-probe", "schedule": YEARLY,
                                "target": {"url": f"{sink.base}/probe?q=<b>bold</b>", "body": body}})
    console.open("/jobs/markup-probe")
    console.present('#history[data-ready="true"]')
    assert json.loads(console.css("#job-spec").text)["target"]["body"] == body
    assert not console.all("#xss-img") and not console.all("#job-spec *") and not console.all("code.url *")
    assert "<b>bold</b>" in console.css("code.url").text


def test_cluster_page_marks_the_leader(console, api, nodes):
    leader = api.ok("GET", "/v1/cluster")["leader"]
    on_leader = nodes[leader - 1]  # belfry dev: node i serves the i-th HTTP port
    for base in [n for n in nodes if n != on_leader][:1] + [on_leader]:
        console.open("/cluster", base=base)
        console.present(f'#members[data-ready="true"][data-leader="{leader}"]')
        badges = console.all('[data-test="leader-badge"]')
        assert len(badges) == 1 and badges[0].text.lower() == "leader"
        row = badges[0].find_element(By.XPATH, "./ancestor::tr")
        assert row.get_attribute("data-member") == str(leader)
        assert console.css("#leader-id").text == str(leader)
        assert len(console.all("#members-table tr[data-member]")) == 3
        # Lag is the leader's view, whichever node serves the page.
        lags = [c.text for c in console.all('#members-table [data-test="lag"]')]
        assert len(lags) == 3 and all(t.endswith(("entry", "entries")) for t in lags), (base, lags)
        assert not console.all("#lag-hint"), base
    assert console.css("#cluster-updated").text.startswith(f"Served by node {leader}")
    console.shot("cluster")

    # Removing a member warns about the quorum first; cancelling changes nothing.
    follower = next(m["id"] for m in api.ok("GET", "/v1/cluster")["members"] if m["id"] != leader)
    console.click(f'tr[data-member="{follower}"] [data-test="remove-member"]')
    warning = console.visible("#confirm-warning").text
    assert "must be reachable" in warning, warning
    console.confirm(cancel=True)
    assert len(api.ok("GET", "/v1/cluster")["members"]) == 3

    # Leadership moves to the member chosen, and the badge follows.
    Select(console.css("#transfer-to")).select_by_value(str(follower))
    console.click("#transfer-leadership")
    console.confirm()
    console.wait(lambda d: api.ok("GET", "/v1/cluster")["leader"] == follower, "leadership did not move", timeout=30)
    console.present(f'#members[data-leader="{follower}"] tr[data-member="{follower}"] [data-test="leader-badge"]', timeout=30)


def test_no_content_security_policy_violation_or_script_error(driver):
    problems = [e["message"] for e in driver.get_log("browser")
                if any(w in e["message"] for w in ("Content Security Policy", "Refused to", "Uncaught"))]
    assert not problems, "\n".join(problems)


@pytest.fixture(autouse=True, scope="module")
def _chromium_logs_start_empty(driver):
    driver.get_log("browser")  # drop what the driver logged before the first page
    yield
