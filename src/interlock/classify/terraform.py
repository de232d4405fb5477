"""The terraform classifier: what would applying this plan do?

The payload is `{"plan": <the JSON of terraform show -json PLANFILE>}`. Each entry of
`resource_changes` carries `change.actions`; we count creates, updates, deletes, replaces
(`["delete","create"]` or `["create","delete"]`), reads, no-ops and forgets (removed from
state, not destroyed). Any delete or replace is destructive (+ `replace` when replaced); only
creates/updates is write; nothing but reads and no-ops is read. Anything malformed is unknown.
`resource_drift` (changes made outside terraform) is reported, never judged: it already happened.
"""

from __future__ import annotations

import functools
from typing import Any

from interlock.classify import privilege
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
    grants: list[tuple[Risk, str, str]] = []  # (risk, address, why) of IAM and RBAC changes
    for change in changes:
        read = read_change(change)
        if read is None:
            return unknown("terraform plan with a resource change we cannot read", counts=counts)
        address, action, reason = read
        counts[action] += 1
        granted = judge_grant(change, address, action)
        if granted is not None:
            grants.append((granted[0], address, granted[1]))
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
    summary = summarize(counts, len(changes), destroyed, replaced)
    if grants:
        tags.add("privilege")
        worst = max(grants, key=lambda g: (g[0].rank, g[0] is Risk.unknown))
        if worst[2]:
            risk = Risk.highest([risk, worst[0]])
            summary = shorten(f"{summary}; {worst[1]} {worst[2]}", 200)
        details["privilege"] = [{"address": a, "risk": r.value, "why": w} for r, a, w in grants if w][:20]
        if any(w == MINTS for _, _, w in grants):
            tags.add("secrets")
    return Classification(risk=risk, tags=tuple(tags), summary=summary, details=details)


def judge_grant(change: dict[str, Any], address: str, action: str) -> tuple[Risk, str] | None:
    """A change that grants or shares access: (risk, why), why empty when it is narrow; None otherwise."""
    rtype = change.get("type")
    rtype = rtype if isinstance(rtype, str) else resource_type(address)
    body = change["change"]
    after = body.get("after")
    after = after if isinstance(after, dict) else {}
    if not grants_access(rtype) and "policy" not in after and "acl" not in after:
        return None  # the common case, kept cheap: a 1,000-resource plan is judged in a few milliseconds
    after_unknown = body.get("after_unknown")
    after_unknown = after_unknown if isinstance(after_unknown, dict) else {}
    found = resource_power(rtype, after, after_unknown)
    if found is None:
        return None
    if action not in ("create", "update", "replace"):
        return Risk.write, ""  # a delete is destructive already; a no-op or forget grants nothing new
    return found


@functools.lru_cache(maxsize=1024)
def grants_access(rtype: str) -> bool:
    """Resource types judged by their type (IAM, RBAC, role assignments, public access, permissions)."""
    return rtype.startswith(("aws_iam_", "kubernetes_cluster_role", "kubernetes_role", "kubernetes_manifest",
                             "azurerm_role_", "aws_lambda_permission", "aws_ssoadmin_", *MINTING)) \
        or (rtype.startswith("google_") and "_iam_" in rtype) \
        or rtype.endswith(("_policy", "_acl", "public_access_block")) or rtype in POLICY_HOLDERS


#: Resource types with a `policy` attribute of their own (the policy may be known only after apply).
POLICY_HOLDERS = frozenset({"aws_s3_bucket", "aws_sqs_queue", "aws_sns_topic", "aws_kms_key", "aws_ecr_repository",
                            "aws_secretsmanager_secret", "aws_glacier_vault"})


#: Terraform resource types that attach a managed policy (the attribute naming it).
ATTACHMENTS = {
    "aws_iam_role_policy_attachment": "policy_arn",
    "aws_iam_user_policy_attachment": "policy_arn",
    "aws_iam_group_policy_attachment": "policy_arn",
    "aws_iam_policy_attachment": "policy_arn",
    "aws_ssoadmin_managed_policy_attachment": "managed_policy_arn",
}
#: Resource types that mint a credential for a user.
MINTING = ("aws_iam_access_key", "aws_iam_user_login_profile", "aws_iam_service_specific_credential",
           "google_service_account_key", "azuread_application_password", "azuread_service_principal_password")
MINTS = "mints a credential (its secret is kept in the state)"
#: Google IAM resources whose whole policy is replaced (every other binding is dropped).
AUTHORITATIVE = ("_iam_policy",)
PUBLIC_MEMBERS = frozenset({"allusers", "allauthenticatedusers"})


def resource_power(rtype: str, after: dict[str, Any], after_unknown: dict[str, Any]) -> tuple[Risk, str] | None:
    """What a resource grants once applied: None when it grants no access at all, (write, "") when narrow."""
    narrow = (Risk.write, "")
    if rtype.startswith(MINTING):
        return Risk.destructive, MINTS
    if rtype in ATTACHMENTS:
        arn = after.get(ATTACHMENTS[rtype])
        if isinstance(arn, str) and privilege.managed_policy_is_admin(arn):
            return Risk.destructive, f"attaches {arn.rsplit('/', 1)[-1]}: administrator power"
        return narrow  # an ARN known only after apply is a policy of this plan, judged where it is written
    if rtype.startswith("aws_iam_"):
        return iam_resource_power(rtype, after, after_unknown) or narrow
    if rtype.startswith(("kubernetes_cluster_role", "kubernetes_role")):
        return rbac_power(rtype, after) or narrow
    if rtype == "kubernetes_manifest":
        manifest = after.get("manifest")
        if not isinstance(manifest, dict) or manifest.get("kind") not in RBAC_KINDS:
            return None
        why = privilege.manifest_power(manifest)
        return (Risk.destructive, why) if why else narrow
    if rtype.startswith("google_") and "_iam_" in rtype:
        return google_iam_power(rtype, after) or narrow
    if rtype.startswith("azurerm_role_"):
        role = after.get("role_definition_name")
        if isinstance(role, str) and privilege.is_admin_name(role):
            return Risk.destructive, f"assigns the role {role}: administrator power"
        return narrow
    return sharing_power(rtype, after, after_unknown)


RBAC_KINDS = frozenset({"ClusterRoleBinding", "RoleBinding", "ClusterRole", "Role"})


def judge_text_document(value: Any, unseen: bool, power: Any) -> tuple[Risk, str] | None:
    if unseen:
        return Risk.unknown, "has a policy known only after apply: cannot judge its power"
    document = privilege.load_document(value)
    if value is not None and document is None:
        return Risk.unknown, "has a policy we cannot read"
    why = power(document) if document is not None else None
    return (Risk.destructive, f"grants: the policy {why}") if why else None


def iam_resource_power(rtype: str, after: dict[str, Any], after_unknown: dict[str, Any]) -> tuple[Risk, str] | None:
    if rtype in ("aws_iam_policy", "aws_iam_role_policy", "aws_iam_user_policy", "aws_iam_group_policy"):
        return judge_text_document(after.get("policy"), after_unknown.get("policy") is True,
                                   privilege.iam_document_power)
    if rtype == "aws_iam_role":
        trust = judge_text_document(after.get("assume_role_policy"), after_unknown.get("assume_role_policy") is True,
                                    privilege.trust_document_power)
        if trust is not None and trust[0] is not Risk.unknown:
            return trust
        for arn in after.get("managed_policy_arns") or []:
            if isinstance(arn, str) and privilege.managed_policy_is_admin(arn):
                return Risk.destructive, f"attaches {arn.rsplit('/', 1)[-1]}: administrator power"
        for block in after.get("inline_policy") or []:
            found = judge_text_document(block.get("policy"), False, privilege.iam_document_power) \
                if isinstance(block, dict) else None
            if found is not None:
                return found
        return None  # a trust policy known only after apply gives a role no power by itself
    if rtype in ("aws_iam_user_group_membership", "aws_iam_group_membership"):
        groups = after.get("groups") or [after.get("group")]
        admin = next((g for g in groups if isinstance(g, str) and privilege.is_admin_name(g)), None)
        return (Risk.destructive, f"joins the administrators group {admin}") if admin else None
    return None


def rbac_power(rtype: str, after: dict[str, Any]) -> tuple[Risk, str] | None:
    if "binding" in rtype:
        refs = after.get("role_ref") or []
        ref = refs[0] if isinstance(refs, list) and refs and isinstance(refs[0], dict) else {}
        name = ref.get("name")
        if isinstance(name, str) and privilege.is_admin_name(name):
            return Risk.destructive, f"binds {name}: administrator power"
        return None
    why = privilege.rbac_rules_power(after.get("rule"))
    return (Risk.destructive, why) if why else None


def google_iam_power(rtype: str, after: dict[str, Any]) -> tuple[Risk, str] | None:
    if rtype.endswith(AUTHORITATIVE):
        return Risk.destructive, "replaces the whole IAM policy: every other grant goes"
    role = after.get("role")
    if isinstance(role, str) and privilege.is_admin_name(role):
        return Risk.destructive, f"grants {role}: administrator power"
    members = [after.get("member"), *(after.get("members") or [])]
    if any(isinstance(m, str) and m.lower() in PUBLIC_MEMBERS for m in members):
        return Risk.destructive, "grants to allUsers: everyone"
    return None


def sharing_power(rtype: str, after: dict[str, Any], after_unknown: dict[str, Any]) -> tuple[Risk, str] | None:
    """Resource policies, ACLs, public access blocks and function permissions of any resource type."""
    # A bucket's or queue's own `policy` is often computed (unknown on every create): only a policy
    # resource's unknown document is unseen; a resource's own is judged when it is known.
    unseen = after_unknown.get("policy") is True and rtype not in POLICY_HOLDERS
    if after.get("policy") is not None or unseen:
        found = judge_text_document(after.get("policy"), unseen,
                                    lambda d: "opens it to everyone" if privilege.resource_document_is_public(d)
                                    else None)
        return found or (Risk.write, "")
    if "acl" in after and rtype.startswith("aws_s3"):
        public = privilege.acl_is_public(after.get("acl"))
        return (Risk.destructive, "the ACL opens it to everyone") if public else (Risk.write, "")
    if rtype.endswith("public_access_block"):
        flags = [v for k, v in after.items() if k.startswith(("block_public", "ignore_public", "restrict_public"))]
        off = any(v is False for v in flags)
        return (Risk.destructive, "turns the public access block off") if off else (Risk.write, "")
    if rtype == "aws_lambda_permission":
        everyone = after.get("principal") == "*" and not (after.get("source_arn") or after.get("source_account"))
        return (Risk.destructive, "lets anyone invoke the function") if everyone else (Risk.write, "")
    return None


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
