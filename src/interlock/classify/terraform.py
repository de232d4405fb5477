"""The terraform classifier: what would applying this plan do?

The payload is `{"plan": <the JSON of terraform show -json PLANFILE>}`. Each entry of
`resource_changes` carries `change.actions`; we count creates, updates, deletes, replaces
(`["delete","create"]` or `["create","delete"]`), reads, no-ops and forgets (removed from
state, not destroyed). Any delete or replace is destructive (+ `replace` when replaced); only
creates/updates is write; nothing but reads and no-ops is read. Anything malformed is unknown.
`resource_drift` (changes made outside terraform) is reported, never judged: it already happened.
"""

from __future__ import annotations

from typing import Any

from interlock.classify.registry import ClassifyContext, register, unaccepted, unknown
from interlock.model import Classification, Kind, Risk

#: actions list (as a tuple) → the name we count it under.
ACTIONS = {
    ("create",): "create",
    ("update",): "update",
    ("delete",): "delete",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace",
    ("read",): "read",
    ("no-op",): "no-op",
    ("forget",): "forget",
}
COUNT_ORDER = ("create", "update", "delete", "replace", "read", "no-op", "forget", "import")
#: Resource types whose deletion loses data that no re-apply brings back.
STATEFUL_TYPES = (
    "aws_db_instance",
    "aws_rds_cluster",
    "aws_s3_bucket",
    "aws_dynamodb_table",
    "aws_ebs_volume",
    "aws_efs_file_system",
    "aws_kms_key",
    "aws_elasticache_cluster",
    "aws_redshift_cluster",
    "aws_docdb_cluster",
    "aws_neptune_cluster",
    "aws_opensearch_domain",
    "aws_elasticsearch_domain",
    "aws_secretsmanager_secret",
    "aws_route53_zone",
    "aws_ecr_repository",
    "aws_backup_vault",
    "google_sql_database_instance",
    "google_storage_bucket",
    "google_bigquery_dataset",
    "google_compute_disk",
    "google_kms_crypto_key",
    "google_spanner_instance",
    "azurerm_mssql_database",
    "azurerm_storage_account",
    "azurerm_postgresql_flexible_server",
    "azurerm_key_vault",
    "azurerm_managed_disk",
    "kubernetes_persistent_volume_claim",
    "kubernetes_namespace",
)
#: Destroying this many resources, or every resource of a plan with more than one, is `mass`.
MASS_DESTROY = 10


@register(Kind.terraform)
def classify_terraform(payload: dict[str, Any], context: ClassifyContext) -> Classification:
    plan = payload.get("plan")
    if not isinstance(plan, dict):
        return unaccepted(Kind.terraform, "terraform action without a `plan` object")
    changes = plan.get("resource_changes", [])
    if not isinstance(changes, list):
        return unknown("terraform plan whose `resource_changes` is not a list")
    if "resource_changes" not in plan and "planned_values" not in plan and "format_version" not in plan:
        return unaccepted(Kind.terraform, "not a terraform plan (no resource_changes, planned_values)")
    counts = dict.fromkeys(COUNT_ORDER, 0)
    destroyed: list[str] = []
    replaced: list[dict[str, str]] = []
    for change in changes:
        read = read_change(change)
        if read is None:
            return unknown("terraform plan with a resource change we cannot read", counts=counts)
        address, action, reason = read
        counts[action] += 1
        if action == "no-op" and isinstance(change.get("change", {}).get("importing"), dict):
            counts["no-op"] -= 1
            counts["import"] += 1  # terraform import: the object enters the state, nothing else changes
        if action == "delete":
            destroyed.append(address)
        elif action == "replace":
            replaced.append({"address": address, "action_reason": reason})
    risk, tags = judge(counts)
    lost = destroyed + [r["address"] for r in replaced]
    if len(lost) >= MASS_DESTROY or (len(lost) > 1 and len(lost) == len(changes)):
        tags.add("mass")
    if any(resource_type(address).startswith(STATEFUL_TYPES) for address in lost):
        tags.add("irreversible")
    drift = plan.get("resource_drift")
    details: dict[str, Any] = {
        "counts": counts,
        "total": len(changes),
        "destroyed": destroyed,
        "replaced": replaced,
        "drift": len(drift) if isinstance(drift, list) else 0,
    }
    if plan.get("errored") is True:
        return unknown("terraform plan is marked errored: it is incomplete", **details)
    return Classification(
        risk=risk,
        tags=tuple(tags),
        summary=summarize(counts, len(changes), destroyed, replaced),
        details=details,
    )


def resource_type(address: str) -> str:
    """`module.db.aws_db_instance.main[0]` → `aws_db_instance`."""
    parts = address.split(".")
    while len(parts) > 2 and parts[0] in ("module", "data"):
        parts = parts[2:] if parts[0] == "module" else parts[1:]
    return parts[0] if parts else ""


def read_change(change: Any) -> tuple[str, str, str] | None:
    """(address, counted action, action_reason) or None when the entry is malformed."""
    if not isinstance(change, dict):
        return None
    address = change.get("address")
    body = change.get("change")
    if not isinstance(address, str) or not isinstance(body, dict):
        return None
    actions = body.get("actions")
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        return None
    action = ACTIONS.get(tuple(actions))
    if action is None:
        return None
    reason = change.get("action_reason")
    return address, action, reason if isinstance(reason, str) else ""


def judge(counts: dict[str, int]) -> tuple[Risk, set[str]]:
    if counts["replace"]:
        return Risk.destructive, {"replace"}
    if counts["delete"]:
        return Risk.destructive, set()
    if counts["create"] or counts["update"] or counts["forget"] or counts["import"]:
        return Risk.write, set()
    return Risk.read, set()


def summarize(counts: dict[str, int], total: int, destroyed: list[str], replaced: list[dict[str, str]]) -> str:
    if counts["delete"] or counts["replace"]:
        verbs = []
        if counts["delete"]:
            verbs.append(f"destroys {counts['delete']}")
        if counts["replace"]:
            verbs.append(f"replaces {counts['replace']}")
        named = [f"{r['address']} (replace)" for r in replaced] + [f"{a} (delete)" for a in destroyed]
        shown = ", ".join(named[:3]) + (f" and {len(named) - 3} more" if len(named) > 3 else "")
        return shorten(f"{' and '.join(verbs)} of {total}: {shown}", 200)
    parts = [f"{counts[name]} to {name}" for name in ("create", "update", "forget", "import") if counts[name]]
    if not parts:
        return f"no changes to {total} resource{'s' if total != 1 else ''}"
    return f"{', '.join(parts)} of {total}"


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
