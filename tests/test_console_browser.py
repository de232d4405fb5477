"""The approvers' console in a real browser (issue 17): Debian's Chromium driven by Playwright against a
real `interlock serve`, on SQLite and PostgreSQL stores, with a real PostgreSQL billing database as
the target. Screenshots go to test-artifacts/console/ (not committed)."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, expect, sync_playwright

from interlock.testing import LiveServer, live_server
from tests.conftest import EXAMPLE_POLICY, PgAdmin, fresh_url

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("INTERLOCK_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts")) / "console"
XSS_SQL = """DELETE FROM invoices WHERE note = '<script>alert(1)</script>' OR note = '"><img src=x onerror=alert(2)>'"""
XSS_INTENT = '<script>alert("intent")</script> "><img src=x onerror=alert(3)>'


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as play:
        # Debian's Chromium, nothing downloaded; --no-sandbox because the tests run as root.
        launched = play.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def billing_db(pg_admin: PgAdmin) -> Iterator[str]:
    name = pg_admin.create_database("console_billing")
    url = pg_admin.url(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int PRIMARY KEY, amount numeric NOT NULL, note text)")
        conn.execute("INSERT INTO invoices SELECT g, g * 10, 'test' FROM generate_series(1, 25) g")
    yield url
    pg_admin.drop_later(name)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def console(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pg_admin: PgAdmin,
            billing_db: str) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp(f"console-{request.param}")
    with fresh_url(request.param, tmp, pg_admin, "console_store") as url, \
            live_server(EXAMPLE_POLICY, url, tmp, env={"BILLING_DSN": billing_db}) as live:
        yield live


@pytest.fixture(scope="module")
def people(console: LiveServer) -> dict[str, str]:
    return {name: console.token(kind, name) for kind, name in
            [("agent", "kiro"), ("human", "alice"), ("human", "bob"), ("human", "carol")]}


class Watched:
    """A browser context for one person, with every dialog and console error recorded (none expected)."""

    def __init__(self, browser: Browser, base: str, width: int = 1280, height: int = 800) -> None:
        self.context: BrowserContext = browser.new_context(base_url=base, viewport={"width": width, "height": height})
        self.page: Page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        #: What to do with a dialog once recorded (default: dismiss; none is expected but the freeze's confirm).
        self.on_dialog: Callable[[Dialog], None] = lambda d: d.dismiss()
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), self.on_dialog(d)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def sign_in(self, token: str) -> Page:
        self.page.goto("/ui")
        self.page.fill("#token", token)
        self.page.click("button[type=submit]")
        return self.page

    def close(self) -> None:
        self.context.close()


def propose(server: LiveServer, token: str, sql: str, intent: str = "remove test invoices") -> dict[str, Any]:
    with server.client(token) as agent:
        body: dict[str, Any] = agent.post("/v1/actions", json={
            "kind": "sql", "environment": "production", "target": "billing-db", "payload": {"sql": sql},
            "rationale": {"intent": intent, "expected_effect": "the test invoices are gone",
                          "rollback": "restore from last night's backup"}}).json()
    assert body["decision"] == "approval_required", body
    return body


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_bob_and_carol_approve_in_the_browser_and_the_action_runs(browser: Browser, console: LiveServer,
                                                                   people: dict[str, str], billing_db: str) -> None:
    with psycopg.connect(billing_db, autocommit=True) as conn:  # one billing database serves both store flavours
        conn.execute("INSERT INTO invoices SELECT g, g * 10, 'test' FROM generate_series(21, 25) g ON CONFLICT DO NOTHING")
    proposed = propose(console, people["kiro"], "DELETE FROM invoices WHERE id > 20")
    request_id = proposed["approval"]["id"]
    bob, carol = Watched(browser, console.url), Watched(browser, console.url)
    try:
        page = bob.sign_in(people["bob"])
        row = page.locator(f"tr[data-id='{request_id}']")
        expect(row).to_contain_text("destructive")
        expect(row).to_contain_text("billing-db")
        shot(page, f"queue-1280-{console.store_url.split(':')[0]}.png")
        row.locator("a").click()
        expect(page.locator("pre.payload").first).to_contain_text("DELETE FROM invoices WHERE id > 20")
        expect(page.locator("body")).to_contain_text("restore from last night's backup")
        expect(page.locator("body")).to_contain_text(proposed["fingerprint"])
        shot(page, f"review-1280-{console.store_url.split(':')[0]}.png")
        page.check("input[name=checked]")
        page.click("#approve")
        expect(page.locator(".notice")).to_contain_text("approval was recorded")
        expect(page.locator("#approve")).to_have_count(0)

        page = carol.sign_in(people["carol"])
        page.goto(f"/ui/approvals/{request_id}")
        page.check("input[name=checked]")
        page.click("#approve")
        expect(page.locator(".state")).to_have_text("approved")
        with console.client(people["kiro"]) as agent:
            done = agent.post(f"/v1/actions/{proposed['id']}/wait", params={"timeout": 30}).json()
        assert done["state"] == "succeeded", done
        assert done["result"]["rows_affected"] == 5
        with psycopg.connect(billing_db) as conn:
            assert conn.execute("SELECT count(*) FROM invoices WHERE id > 20").fetchone() == (0,)
        assert bob.dialogs == [] and carol.dialogs == [] and bob.errors == [] and carol.errors == []
    finally:
        bob.close()
        carol.close()


def test_the_owner_sees_it_without_a_button_and_a_forged_post_is_refused(browser: Browser, console: LiveServer,
                                                                          people: dict[str, str]) -> None:
    request_id = propose(console, people["kiro"], "DELETE FROM invoices WHERE id = 3")["approval"]["id"]
    alice = Watched(browser, console.url)
    try:
        page = alice.sign_in(people["alice"])
        page.goto(f"/ui/approvals/{request_id}")
        expect(page.locator("pre.payload").first).to_contain_text("DELETE FROM invoices WHERE id = 3")
        expect(page.locator("#approve")).to_have_count(0)
        expect(page.locator("#why-not")).to_contain_text("owns agent kiro")
        csrf = page.locator("input[name=csrf]").first.get_attribute("value")
        forged = page.request.post(f"/ui/approvals/{request_id}/approve", form={"csrf": csrf or ""})
        assert forged.status == 403 and "never counts as its approver" in forged.text()
        with console.client(people["bob"]) as api:
            assert api.get(f"/v1/approvals/{request_id}").json()["votes"] == []
    finally:
        alice.close()


def test_agent_values_show_as_text_and_run_nothing(browser: Browser, console: LiveServer,
                                                   people: dict[str, str]) -> None:
    request_id = propose(console, people["kiro"], XSS_SQL, intent=XSS_INTENT)["approval"]["id"]
    bob = Watched(browser, console.url)
    try:
        page = bob.sign_in(people["bob"])
        expect(page.locator(f"tr[data-id='{request_id}']")).to_contain_text("<script>alert(1)</script>")
        page.goto(f"/ui/approvals/{request_id}")
        expect(page.locator("pre.payload").first).to_contain_text("<script>alert(1)</script>")
        expect(page.locator("pre.payload").first).to_contain_text('"><img src=x onerror=alert(2)>')
        expect(page.locator("dd.text").first).to_have_text(XSS_INTENT)
        assert page.locator("main script").count() == 0 and page.locator("main img").count() == 0
        page.wait_for_load_state("networkidle")
        assert bob.dialogs == [], bob.dialogs
        assert bob.errors == [], bob.errors
    finally:
        bob.close()


def test_refusals_csrf_and_agent_sign_in(browser: Browser, console: LiveServer, people: dict[str, str]) -> None:
    request_id = propose(console, people["kiro"], "DELETE FROM invoices WHERE id = 4")["approval"]["id"]
    kiro, bob = Watched(browser, console.url), Watched(browser, console.url)
    try:
        page = kiro.sign_in(people["kiro"])
        expect(page.locator(".error")).to_contain_text("cannot sign in")
        assert not [c for c in kiro.context.cookies() if c["name"] == "interlock_session"]
        page = bob.sign_in(people["bob"])
        without = page.request.post(f"/ui/approvals/{request_id}/approve", form={"checked": "on"})
        assert without.status == 403 and "did not come from your console page" in without.text()
        cookie = next(c for c in bob.context.cookies() if c["name"] == "interlock_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    finally:
        kiro.close()
        bob.close()


def test_the_queue_updates_live_without_reload(browser: Browser, console: LiveServer, people: dict[str, str]) -> None:
    carol = Watched(browser, console.url)
    try:
        page = carol.sign_in(people["carol"])
        expect(page.locator("#queue")).to_have_attribute("data-connected", "1")
        page.evaluate("window.__notReloaded = true")
        request_id = propose(console, people["kiro"], "DELETE FROM invoices WHERE id = 5")["approval"]["id"]
        expect(page.locator(f"tr[data-id='{request_id}']")).to_be_visible(timeout=10_000)
        assert page.evaluate("window.__notReloaded") is True
        left = page.locator(f"tr[data-id='{request_id}'] td.left")
        shown = left.inner_text()
        expect(left).not_to_have_text(shown, timeout=10_000)  # the time left counts down on the page
        expect(left).to_have_text(re.compile(r"^(59m \d\ds|1h 00m)$"))
        with console.client(people["bob"]) as api:  # a vote elsewhere updates what it still needs
            assert api.post(f"/v1/approvals/{request_id}/approve").status_code == 200
        expect(page.locator(f"tr[data-id='{request_id}']")).to_contain_text("1 more from dba", timeout=10_000)
        page.goto(f"/ui/approvals/{request_id}")  # an open review page says when the request changes
        expect(page.locator("#watch")).to_have_attribute("data-connected", "1")
        expect(page.locator("#changed")).to_be_hidden()
        propose(console, people["kiro"], "DELETE FROM invoices WHERE id = 15")  # another request: no notice
        expect(page.locator("#watch")).to_have_attribute("data-checked", re.compile(r"^[1-9]"), timeout=10_000)
        expect(page.locator("#changed")).to_be_hidden()
        with console.client(people["carol"]) as api:
            assert api.post(f"/v1/approvals/{request_id}/deny", json={"reason": "not today"}).status_code == 200
        expect(page.locator("#changed")).to_be_visible(timeout=10_000)
        page.evaluate("window.__notReloaded = true")
        with console.client(people["bob"]) as api:
            assert api.post(f"/v1/approvals/{request_id}/deny", json={"reason": "x"}).status_code == 409
        assert page.evaluate("window.__notReloaded") is True
        assert carol.errors == [], carol.errors
    finally:
        carol.close()


def test_the_review_page_is_usable_on_a_phone(browser: Browser, console: LiveServer, people: dict[str, str]) -> None:
    request_id = propose(console, people["kiro"], "DELETE FROM invoices WHERE id = 6 AND amount > 0")["approval"]["id"]
    phone = Watched(browser, console.url, 390, 844)
    try:
        page = phone.sign_in(people["bob"])
        shot(page, f"queue-390-{console.store_url.split(':')[0]}.png")
        page.goto(f"/ui/approvals/{request_id}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the review page scrolls sideways on a phone ({width}px)"
        approve = page.locator("#approve")
        approve.scroll_into_view_if_needed()
        expect(approve).to_be_visible()
        box = approve.bounding_box()
        assert box is not None and box["width"] >= 44 and box["x"] + box["width"] <= 390
        shot(page, f"review-390-{console.store_url.split(':')[0]}.png")
        page.check("input[name=checked]")
        approve.click()
        expect(page.locator(".notice")).to_contain_text("approval was recorded")
    finally:
        phone.close()



def test_the_freeze_button_asks_first_then_freezes_and_an_sre_thaws(browser: Browser, console: LiveServer,
                                                                     people: dict[str, str]) -> None:
    bob = Watched(browser, console.url)
    answers: list[bool] = [False, True]  # dismiss the first confirm dialog, accept the second
    try:
        page = bob.sign_in(people["bob"])
        bob.on_dialog = lambda d: d.accept() if answers.pop(0) else d.dismiss()
        page.goto("/ui/guards")
        page.select_option("#f-env", "production")
        page.fill("#f-reason", "incident 42: stop everything in production")
        page.click("#freeze")
        expect(page.locator("body")).not_to_contain_text("Frozen.")
        with console.client(people["bob"]) as api:
            assert api.get("/v1/freezes").json()["freezes"] == []  # dismissed: nothing frozen
        page.click("#freeze")
        expect(page.locator(".notice")).to_contain_text("Frozen.")
        expect(page.locator("tr[data-freeze]")).to_contain_text("incident 42")
        with console.client(people["kiro"]) as agent:
            denied = agent.post("/v1/actions", json={"kind": "shell", "environment": "production",
                                                      "payload": {"command": "kubectl get pods"}}).json()
        assert denied["decision"] == "deny" and "incident 42" in json.dumps(denied), denied
        assert len(bob.dialogs) == 2 and "Freeze now?" in bob.dialogs[0]
    finally:
        with console.client(people["bob"]) as api:  # leave nothing frozen for the other tests
            for found in api.get("/v1/freezes").json()["freezes"]:
                assert api.delete(f"/v1/freezes/{found['id']}").status_code == 200
        bob.close()
