"""A rollout's approval in the console, in Debian's Chromium against a real `interlock serve` (both stores)
over a fleet of real local HTTP services: the live queue lists it, the review page shows every target with
its decision, the steps and the rollback; approving there (CSRF as every vote) starts it, and its progress
page follows it to the end (reloaded on the store's `rollouts` events, not a timer)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, expect

from interlock.testing import live_server
from tests import test_console_browser as console_browser
from tests.rollout_fleet import fleet
from tests.test_console_browser import Watched, shot
from tests.test_rollouts import HEALTH, policy_text, rollout_doc

browser = console_browser.browser


def test_a_rollout_is_reviewed_and_approved_in_the_console(browser: Browser, store_url: str, tmp_path: Path) -> None:
    with fleet(["web-1", "web-2"]) as services:
        policy = tmp_path / "policy.yaml"
        policy.write_text(policy_text({n: s.url for n, s in services.items()}))
        doc = rollout_doc("v2", steps=[{"setTargets": 1}, {"analysis": {"checks": [HEALTH]}}, {"pause": {}},
                                       {"percent": 100}])
        with live_server(policy, store_url, tmp_path) as server:
            agent, bob = server.token("agent", "deployer"), server.token("human", "bob")
            with server.client(agent) as http:
                started = http.post("/v1/rollouts", json=doc).json()
            request_id = started["approval"]["request_id"]
            watched = Watched(browser, server.url)
            try:
                page = watched.sign_in(bob)
                row = page.locator(f"tr[data-id='{request_id}']")
                expect(row).to_contain_text("rollout over 2 targets of group web-fleet")
                row.locator("a").click()
                section = page.locator("#rollout")
                expect(section.locator("tr[data-target='web-2']")).to_contain_text("approval_required")
                expect(section.locator("tr[data-target='web-2']")).to_contain_text("2")  # its wave
                expect(section.locator("ol.steps")).to_contain_text("analysis: health (http /health")
                expect(section.locator("ol.steps")).to_contain_text("pause until a human promotes")
                expect(section.locator("pre.rollback")).to_contain_text('"v1"')
                expect(page.locator("pre.payload").last).to_contain_text("{target.url}/deploy")
                shot(page, f"rollout-review-{store_url.split(':')[0]}.png")
                page.check("input[name=checked]")
                page.click("#approve")
                expect(page.locator(".notice")).to_contain_text("approval was recorded")
                page.goto(f"/ui/rollouts/{started['id']}")
                expect(page.locator("#phase")).to_have_text("paused", timeout=30_000)  # at its pause {} step
                expect(page.locator("main")).to_have_attribute("data-connected", "1")  # to /ui/events?on=rollouts
                assert page.locator("meta[http-equiv=refresh]").count() == 0, "driven by events, not a timer"
                expect(page.locator("tr[data-target='web-1']")).to_contain_text("changed")
                expect(page.locator("tr[data-target='web-2']")).to_contain_text("untouched")
                shot(page, f"rollout-progress-{store_url.split(':')[0]}.png")
                with server.client(bob) as http:
                    assert http.post(f"/v1/rollouts/{started['id']}/promote", json={}).status_code == 200
                expect(page.locator("#phase")).to_have_text("succeeded", timeout=30_000)  # the page follows it
                assert int(page.locator("main").get_attribute("data-reloaded") or 0) >= 1
                expect(page.locator("#live")).to_have_count(0)  # it stops following a finished rollout
                assert watched.dialogs == [] and watched.errors == [], (watched.dialogs, watched.errors)
            finally:
                watched.close()
        assert {n: s.state()["deploys"] for n, s in services.items()} == {"web-1": ["v2"], "web-2": ["v2"]}
