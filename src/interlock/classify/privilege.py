"""Privilege escalation: one judge of "does this grant administrator power?" for every kind.

The line (docs/classifiers.md, "Privilege escalation"): granting administrator, owner or superuser
power, or the power to grant it, is `destructive` + `privilege`; a narrow permission change (named
privileges on named things for named principals) is `write` + `privilege`. The SQL, AWS, terraform
and kubectl classifiers (and the MCP and shell doors through them) ask these functions, so the same
grant is judged the same whichever door it comes through.

- Role names: a role whose name says administrator, owner or superuser (`admin`, `db_owner`,
  `ACCOUNTADMIN`, `rds_superuser`, `roles/owner`, `cluster-admin` …) or a known built-in with that
  power (`postgres`, `pg_execute_server_program` …). Judged by name: the name is all a classifier
  sees of a role, and an operator who names a role `billing_admin` means it.
- IAM policy documents: an `Allow` of every action (`*`, `service:*` for IAM, STS, organizations
  and KMS), of an action that grants (`iam:Attach*`, `iam:Put*Policy`, `iam:PassRole`,
  `iam:CreateAccessKey` …) on every resource, or a `NotAction` allow (everything but a list).
- Resource policies (bucket, queue, topic, key): an `Allow` to `Principal: "*"` (or `{"AWS": "*"}`)
  without a condition opens the resource to everyone.
- Kubernetes RBAC: a binding to `cluster-admin`/`admin`, a rule with `*` verbs or resources, or
  the verbs `escalate`, `bind`, `impersonate`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

#: Whole role names with administrator power (lower case).
ADMIN_ROLES = frozenset(
    {
        "postgres",
        "root",
        "sa",
        "wheel",
        "sudo",
        "system:masters",
        "pg_execute_server_program",
        "pg_write_server_files",
        "pg_read_server_files",
        "pg_write_all_data",
        "pg_read_all_data",
        "pg_signal_backend",
        "pg_database_owner",
        "rdsadmin",
        "azuresu",
        "poweruseraccess",
        "iamfullaccess",
        "awsorganizationsfullaccess",
        "roles/iam.serviceaccounttokencreator",
    }
)
#: A part of a role name (split on `_ - . / :` and case changes) ending so says administrator power.
ADMIN_ENDINGS = ("admin", "admins", "administrator", "administrators", "owner", "owners", "superuser", "dba")

_CASE_CHANGE = re.compile(r"([a-z0-9])([A-Z])")
_NAME_PARTS = re.compile(r"[_\-./:@\s]+")


def is_admin_name(name: str) -> bool:
    """`db_owner`, `ACCOUNTADMIN`, `roles/owner`, `cluster-admin`, `AdministratorAccess`: True; `analyst`: False."""
    bare = name.strip().strip("'\"`[]")
    if bare.lower() in ADMIN_ROLES:
        return True
    parts = _NAME_PARTS.split(_CASE_CHANGE.sub(r"\1 \2", bare).lower())
    return any(part.endswith(ADMIN_ENDINGS) for part in parts if part)


# --- IAM policy documents ------------------------------------------------------------------------------

#: Actions that hand out power: holding one of them on `*` is holding them all.
GRANTING_ACTIONS = frozenset(
    {
        "iam:attachuserpolicy",
        "iam:attachrolepolicy",
        "iam:attachgrouppolicy",
        "iam:putuserpolicy",
        "iam:putrolepolicy",
        "iam:putgrouppolicy",
        "iam:createpolicyversion",
        "iam:setdefaultpolicyversion",
        "iam:passrole",
        "iam:createaccesskey",
        "iam:createloginprofile",
        "iam:updateloginprofile",
        "iam:updateassumerolepolicy",
        "iam:addusertogroup",
        "iam:putuserpermissionsboundary",
        "iam:putrolepermissionsboundary",
        "iam:deleteuserpermissionsboundary",
        "iam:deleterolepermissionsboundary",
        "sts:assumerole",
        "organizations:*",
    }
)
#: Services where `service:*` alone is administrator power.
ADMIN_SERVICES = frozenset({"iam", "sts", "organizations", "sso", "identitystore", "kms"})
def managed_policy_is_admin(arn: str) -> bool:
    """`arn:aws:iam::aws:policy/AdministratorAccess`, `…/IAMFullAccess`, `…/job-function/SystemAdministrator`."""
    return is_admin_name(arn.rsplit("/", 1)[-1])


def load_document(value: Any) -> dict[str, Any] | None:
    """A policy document given as an object or as JSON text (URL-encoded text is decoded by the caller)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            loaded = json.loads(value)
        except (ValueError, RecursionError):
            return None
        return loaded if isinstance(loaded, dict) else None
    return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in _as_list(document.get("Statement")) if isinstance(s, dict)]


def _is_allow(statement: dict[str, Any]) -> bool:
    return str(statement.get("Effect", "")).lower() == "allow"


def _action_is_admin(action: str) -> bool:
    lowered = action.lower().strip()
    if lowered in ("*", "*:*"):
        return True
    service, _, name = lowered.partition(":")
    if name == "*" and service in ADMIN_SERVICES:
        return True
    if lowered in GRANTING_ACTIONS:
        return True
    # Wildcards that cover a granting action: `iam:Attach*`, `iam:Put*`, `iam:*Policy`.
    if "*" in name or "?" in name:
        pattern = re.compile(re.escape(lowered).replace(r"\*", ".*").replace(r"\?", "."))
        return any(pattern.fullmatch(granting) for granting in GRANTING_ACTIONS)
    return False


def _covers_everything(resources: Iterable[Any]) -> bool:
    return any(isinstance(r, str) and r.strip() in ("*", "arn:aws:iam::*:*", "arn:aws:*:*:*:*") for r in resources)


def iam_document_power(document: dict[str, Any]) -> str | None:
    """Why an identity policy document grants administrator power, or None when it is narrow."""
    for statement in _statements(document):
        if not _is_allow(statement):
            continue
        if "NotAction" in statement:
            return "allows everything except a list (NotAction)"
        actions = [a for a in _as_list(statement.get("Action")) if isinstance(a, str)]
        resources = _as_list(statement.get("Resource")) or ["*"]
        broad = [a for a in actions if _action_is_admin(a)]
        if any(a.strip() in ("*", "*:*") for a in broad):
            return "allows every action"
        if broad and (_covers_everything(resources) or "NotResource" in statement):
            return f"allows {broad[0]} on every resource"
        if broad and any(a.lower().startswith(("iam:", "sts:")) for a in broad):
            return f"allows {broad[0]}, which grants power"
    return None


def _principal_is_everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return any(
            value == "*" or (isinstance(value, list) and "*" in value)
            for key, value in principal.items()
            if str(key) in ("AWS", "CanonicalUser", "Federated")
        )
    return False


def resource_document_is_public(document: dict[str, Any]) -> bool:
    """A resource policy (bucket, queue, topic, key, role trust) that allows anyone without a condition."""
    for statement in _statements(document):
        if not _is_allow(statement):
            continue
        if _principal_is_everyone(statement.get("Principal")) and not statement.get("Condition"):
            return True
        if "NotPrincipal" in statement:
            return True
    return False


def trust_document_power(document: dict[str, Any]) -> str | None:
    """A role trust policy that lets anyone, or any account, assume the role."""
    for statement in _statements(document):
        if not _is_allow(statement):
            continue
        principal = statement.get("Principal")
        if _principal_is_everyone(principal) or "NotPrincipal" in statement:
            return "lets anyone assume the role"
    return None


#: S3 canned ACLs and grantee groups that open a bucket or object to others.
PUBLIC_ACLS = frozenset({"public-read", "public-read-write", "authenticated-read"})
PUBLIC_GRANTEES = ("acs.amazonaws.com/groups/global/allusers", "acs.amazonaws.com/groups/global/authenticatedusers")


def acl_is_public(acl: Any, grants: Iterable[Any] = ()) -> bool:
    if isinstance(acl, str) and acl.strip().lower() in PUBLIC_ACLS:
        return True
    return any(isinstance(g, str) and any(p in g.lower() for p in PUBLIC_GRANTEES) for g in grants)


# --- Kubernetes RBAC -----------------------------------------------------------------------------------

#: Kubernetes groups and users that stand for everyone: a binding to them is a grant to PUBLIC.
EVERYONE_SUBJECTS = frozenset({"system:authenticated", "system:unauthenticated", "system:anonymous"})
#: Verbs that let the holder grant itself more (escalate, bind) or act as someone else (impersonate).
RBAC_GRANTING_VERBS = frozenset({"escalate", "bind", "impersonate"})


def rbac_rules_power(rules: Any) -> str | None:
    """Why a Role/ClusterRole's rules are administrator power (a `*` verb or resource, or a granting verb)."""
    for rule in _as_list(rules):
        if not isinstance(rule, dict):
            continue
        verbs = {str(v).lower() for v in _as_list(rule.get("verbs"))}
        resources = {str(r).lower() for r in _as_list(rule.get("resources"))}
        if "*" in verbs or "*" in resources:
            what = "every verb" if "*" in verbs else ", ".join(sorted(verbs))
            where = "every resource" if "*" in resources or not resources else ", ".join(sorted(resources))
            return f"allows {what} on {where}"
        granting = verbs & RBAC_GRANTING_VERBS
        if granting:
            return f"allows `{sorted(granting)[0]}`: may grant itself more"
    return None


def manifest_power(document: dict[str, Any]) -> str | None:
    """A Kubernetes object (as parsed YAML/JSON) that grants administrator power, or None."""
    kind = str(document.get("kind", ""))
    if kind in ("ClusterRoleBinding", "RoleBinding"):
        role_ref = document.get("roleRef")
        name = role_ref.get("name") if isinstance(role_ref, dict) else None
        if isinstance(name, str) and is_admin_name(name):
            return f"{kind} to {name}"
        subjects = _as_list(document.get("subjects"))
        if any(isinstance(s, dict) and str(s.get("name", "")) in EVERYONE_SUBJECTS for s in subjects):
            return f"{kind} to everyone"
        return None
    if kind in ("ClusterRole", "Role"):
        why = rbac_rules_power(document.get("rules"))
        return f"{kind} {why}" if why else None
    return None
