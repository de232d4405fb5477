"""Take the screenshots of docs/console.md from a real run: a real `interlock serve` on a fresh SQLite
store with examples/policy.yaml, real proposals from agent kiro, and Debian's Chromium.

    .venv/bin/python scripts/console_screenshots.py [OUT_DIR]     (default docs/img)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from interlock.testing import LiveServer, live_server

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "examples" / "policy.yaml"
RATIONALE = {"intent": "remove the invoices imported twice by last night's job",
             "expected_effect": "the 25 duplicated rows of batch 2026-11-24 are deleted; nothing else changes",
             "rollback": "re-import batch 2026-11-24 from s3://billing-imports/2026-11-24.csv"}
PLAN = {"format_version": "1.2", "resource_changes": [
    {"address": "aws_instance.legacy_api[0]", "change": {"actions": ["delete"]}},
    {"address": "aws_instance.legacy_api[1]", "change": {"actions": ["delete"]}},
    {"address": "aws_lb_target_group.api", "change": {"actions": ["update"]}},
    {"address": "aws_instance.api_v2", "change": {"actions": ["create"]}},
]}


def propose(server: LiveServer, token: str, body: dict[str, object]) -> str:
    with server.client(token) as agent:
        answer = agent.post("/v1/actions", json=body).json()
    return str(answer["approval"]["id"])


def sign_in(page: Page, token: str) -> None:
    page.goto("/ui")
    page.fill("#token", token)
    page.click("button[type=submit]")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with live_server(POLICY, f"sqlite:///{work / 'interlock.db'}", work,
                         env={"BILLING_DSN": "postgresql://billing@127.0.0.1:5432/billing"}) as server:
            kiro, bob, carol = (server.token("agent", "kiro"), server.token("human", "bob"),
                                server.token("human", "carol"))
            propose(server, kiro, {"kind": "shell", "environment": "production",
                                   "payload": {"command": "kubectl scale deployment/api --replicas=5 -n billing"},
                                   "rationale": {"intent": "absorb the Monday peak"}})
            terraform = propose(server, kiro, {"kind": "terraform", "environment": "production",
                                               "payload": {"plan": PLAN},
                                               "rationale": {"intent": "retire the legacy API instances",
                                                             "expected_effect": "two instances destroyed, v2 created",
                                                             "rollback": "git revert and apply"}})
            sql = propose(server, kiro, {"kind": "sql", "environment": "production", "target": "billing-db",
                                         "payload": {"sql": "DELETE FROM invoices\n WHERE batch = '2026-11-24'\n"
                                                            "   AND duplicate_of IS NOT NULL"},
                                         "rationale": RATIONALE})
            with server.client(carol) as human:
                human.post(f"/v1/approvals/{sql}/approve")
            with sync_playwright() as play:
                browser = play.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                               args=["--no-sandbox"])
                for width, height, suffix in ((1280, 800, ""), (390, 844, "-phone")):
                    context = browser.new_context(base_url=server.url, viewport={"width": width, "height": height})
                    page = context.new_page()
                    sign_in(page, bob)
                    page.screenshot(path=str(out / f"console-queue{suffix}.png"), full_page=True)
                    page.goto(f"/ui/approvals/{sql}")
                    page.screenshot(path=str(out / f"console-review{suffix}.png"), full_page=True)
                    if not suffix:
                        page.goto(f"/ui/approvals/{terraform}")
                        page.screenshot(path=str(out / "console-terraform.png"), full_page=True)
                        page.goto("/ui/guards")
                        page.screenshot(path=str(out / "console-guards.png"), full_page=True)
                        page.goto(f"/ui/approvals/{sql}")
                        action = page.locator("a[href^='/ui/actions/']").first.get_attribute("href") or ""
                        page.goto(action)
                        page.screenshot(path=str(out / "console-timeline.png"), full_page=True)
                    context.close()
                browser.close()
    print("\n".join(sorted(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)
                           for p in out.glob("console-*.png"))))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "img")
