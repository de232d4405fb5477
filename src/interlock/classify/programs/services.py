"""Judges of service CLIs: code hosting (gh, glab), secrets and service discovery (vault, consul,
etcdctl). Reads are read, the rest by verb; a command handed to them (`consul exec CMD`) is judged
by the shell classifier; reading a secret's value is at least write + `secrets`, as reading a
secret file is.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from interlock.classify import privilege
from interlock.classify.programs.base import (
    D,
    Judgement,
    R,
    Runner,
    Stdin,
    U,
    Verbs,
    W,
    Word,
    discloses,
    first_operand,
    judge,
    lit,
    name_set,
)


def verbs(read: str = "", write: str = "", destructive: str = "") -> Verbs:
    return Verbs(name_set(read), name_set(write), name_set(destructive))


class CommandLine(NamedTuple):
    """A vault, consul or etcdctl command line: `verb` joins a group and its verb (`kv-get`)."""

    values: list[str]
    words: list[str]
    verb: str


def command_line(name: str, args: list[Word], groups: frozenset[str]) -> CommandLine | Judgement:
    """The command line, or the judgement when there is none to read (an expansion; usage)."""
    values = lit(args)
    if values is None:
        return Judgement(U, f"{name} argument produced by an expansion")
    words = [v for v in values if not v.startswith("-")]
    if not words:
        return Judgement(R, f"{name} prints usage")
    verb = f"{words[0]}-{words[1]}" if words[0] in groups and len(words) > 1 else words[0]
    return CommandLine(values, words, verb)


# --------------------------------------------------------------------------- gh, glab

#: gh and glab: object → its verbs (`gh pr list`, `glab mr merge`).
FORGE = {
    "pr": verbs("list view status diff checks", "create merge close reopen edit comment review ready checkout lock"),
    "mr": verbs(
        "list view diff issues", "create merge close reopen update note approve revoke checkout rebase", "delete"
    ),
    "issue": verbs(
        "list view status", "create close reopen edit comment transfer pin unpin lock unlock develop note update",
        "delete",
    ),
    "repo": verbs("view list", "create clone fork edit sync rename archive unarchive set-default mirror", "delete"),
    "release": verbs("list view download", "create edit upload", "delete delete-asset"),
    "run": verbs("list view watch download", "rerun cancel", "delete"),
    "ci": verbs("list view status trace get lint", "run retry cancel trigger", "delete"),
    "pipeline": verbs("list view status", "run retry cancel", "delete"),
    "workflow": verbs("list view", "run enable disable"),
    "secret": verbs("list", "set", "delete"),
    "variable": verbs("list get export", "set update", "delete"),
    "gist": verbs("list view clone", "create edit", "delete"),
    "label": verbs("list", "create edit clone", "delete"),
    "cache": verbs("list", "", "delete"),
    "ssh-key": verbs("list", "add", "delete"),
    "gpg-key": verbs("list", "add", "delete"),
    "auth": verbs("status", "login logout refresh setup-git switch"),
    "config": verbs("get list", "set"),
    "extension": verbs("list browse search"),
    "alias": verbs("list", "set import", "delete"),
    "project": verbs("list view field-list item-list", "create edit copy close item-add item-edit link", "delete"),
    "codespace": verbs("list view logs ports", "create edit code cp jupyter ssh rebuild stop", "delete"),
}
_FORGE_READS = name_set("status browse search help version completion api-help")
#: gh/glab api: options whose presence makes the request a POST.
_API_FIELDS = name_set("-f -F --field --raw-field --input -H --header")


@judge("gh", "glab")
def judge_forge(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    values = lit(args)
    if values is None:
        return Judgement(U, f"{prog} argument produced by an expansion")
    sub, rest = first_operand(args, "R", ["repo"])
    if sub == "api":
        return _forge_api(prog, [w.value or "" for w in rest])
    if sub in _FORGE_READS or not sub:
        return Judgement(R, f"{prog} {sub or 'help'} reads")
    table = FORGE.get(sub or "")
    if table is None:
        return Judgement(U, f"{prog} {sub} not understood (an alias or extension runs code we cannot see)")
    action, _ = first_operand(rest, "R", ["repo"])
    if sub == "auth" and (action == "token" or any(w.value in ("--show-token", "-t") for w in rest)):
        return discloses(f"{prog} auth {action} prints the login token")
    risk = table.risk(action or "")
    if risk is None:
        return Judgement(U, f"{prog} {sub} {action} not understood")
    tags = frozenset({"irreversible"}) if risk is D and sub in ("repo", "gist") else frozenset()
    return Judgement(risk, f"{prog} {sub} {action}", tags)


def _forge_api(prog: str, values: list[str]) -> Judgement:
    method = ""
    for i, v in enumerate(values):
        if v in ("-X", "--method") and i + 1 < len(values):
            method = values[i + 1].upper()
        elif v.startswith("--method="):
            method = v.partition("=")[2].upper()
        elif v.startswith("-X") and len(v) > 2:
            method = v[2:].upper()
    fields = any(v in _API_FIELDS or v.startswith(("--field=", "--raw-field=", "--input=")) for v in values)
    if "graphql" in values:
        mutation = any(re.search(r"\bmutation\b", v) for v in values)
        return Judgement(W if mutation else R, f"{prog} api graphql {'mutation' if mutation else 'query'}")
    method = method or ("POST" if fields else "GET")
    if method in ("GET", "HEAD"):
        return Judgement(R, f"{prog} api {method}")
    if method == "DELETE":
        return Judgement(D, f"{prog} api DELETE")
    if method in ("POST", "PUT", "PATCH"):
        return Judgement(W, f"{prog} api {method}")
    return Judgement(U, f"{prog} api {method} not understood")


# --------------------------------------------------------------------------- vault

#: `vault VERB` or `vault GROUP VERB` (`vault kv get`), by risk.
VAULT = verbs(
    """
    status version list path-help print kv-list kv-metadata-get policy-list policy-read auth-list
    secrets-list audit-list token-lookup token-capabilities operator-raft operator-members lease-lookup
    plugin-list read-help
    """,
    """
    write kv-put kv-patch kv-rollback kv-undelete kv-enable-versioning kv-metadata-put policy-write
    policy-fmt auth-enable auth-tune secrets-enable secrets-tune secrets-move operator-unseal login
    token-renew lease-renew audit-enable plugin-register plugin-reload
    """,
    """
    delete kv-delete kv-destroy kv-metadata-delete secrets-disable auth-disable policy-delete
    token-revoke lease-revoke operator-seal operator-step-down operator-rekey operator-generate-root
    audit-disable plugin-deregister
    """,
)
#: Verbs that print a secret's value.
_VAULT_REVEALS = name_set("read kv-get unwrap")
_VAULT_GROUPS = name_set("kv policy auth secrets token lease operator audit plugin")


@judge("vault")
def judge_vault(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    line = command_line("vault", args, _VAULT_GROUPS)
    if isinstance(line, Judgement):
        return line
    values, _, verb = line
    if verb == "kv-metadata" and len(line.words) > 2:
        verb = f"kv-metadata-{line.words[2]}"  # `vault kv metadata get|put|delete`: three words
    if verb in _VAULT_REVEALS or (verb == "print" and line.words[1:2] == ["token"]) or (
        verb == "token-lookup" and not any(v.startswith("-accessor") for v in values)
    ):
        return discloses(f"vault {' '.join(line.words[:2])} prints a secret's value or the session's token")
    if verb == "token-create":
        policies = [v.partition("=")[2] for v in values if v.startswith("-policy=")]
        if not policies or any(p in ("root", "sudo") or privilege.is_admin_name(p) for p in policies):
            return Judgement(D, "vault token create mints a token with root or its parent's power", _PRIV | {"secrets"})
        return Judgement(W, f"vault token create mints a token for {', '.join(policies)}", _PRIV | {"secrets"})
    risk = VAULT.risk(verb)
    if risk is None:
        return Judgement(U, f"vault {verb.replace('-', ' ')} not understood")
    tags = frozenset({"irreversible"}) if verb in ("kv-destroy", "kv-metadata-delete") else frozenset()
    if verb.startswith(("policy-", "auth-", "operator-generate-root")) and risk is not R:
        tags = tags | _PRIV
    return Judgement(risk, f"vault {verb.replace('-', ' ')}", tags)


_PRIV = frozenset({"privilege"})


# --------------------------------------------------------------------------- consul

CONSUL = verbs(
    """
    members info version monitor catalog kv-get kv-export operator-raft intention-list intention-get
    intention-check config-read config-list snapshot-inspect validate keyring-list acl-policy-list
    acl-role-list acl-token-list debug rtt
    """,
    """
    kv-put kv-import services-register reload snapshot-save maint event keyring-install keyring-use
    intention-create config-write acl-policy-create acl-role-create acl-policy-update join login logout
    """,
    """
    kv-delete services-deregister snapshot-restore leave force-leave keyring-remove intention-delete
    config-delete acl-policy-delete acl-role-delete acl-token-delete operator-raft-remove-peer
    """,
)
_CONSUL_GROUPS = name_set("kv services snapshot keyring intention config acl operator")


@judge("consul")
def judge_consul(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    line = command_line("consul", args, _CONSUL_GROUPS)
    if isinstance(line, Judgement):
        return line
    values, words, verb = line
    if words[0] == "exec":
        # `consul exec CMD` runs CMD on every matching node: judged as if it ran here.
        command = " ".join(words[1:])
        if not command:
            return Judgement(U, "consul exec without a command")
        nested = run.shell(command)
        return Judgement(nested.risk, f"consul exec: {nested.reason}", nested.tags, nested.paths, nested.nested)
    if words[0] in ("watch", "lock"):
        return Judgement(U, f"consul {words[0]} runs a handler program")
    if verb.startswith("acl-") and len(words) > 2:
        verb = "-".join(words[:3])
    if verb == "acl-token-create":
        return Judgement(D, "consul acl token create mints a token", _PRIV | {"secrets"})
    if verb == "operator-raft" and len(words) > 2 and words[2] == "remove-peer":
        verb = "operator-raft-remove-peer"
    risk = CONSUL.risk(verb)
    if risk is None:
        return Judgement(U, f"consul {verb.replace('-', ' ')} not understood")
    recursive = verb == "kv-delete" and "-recurse" in values
    tags = frozenset({"mass"}) if recursive else frozenset({"replace"}) if verb == "snapshot-restore" else frozenset()
    if verb.startswith("acl-") and risk is not R:
        tags = tags | _PRIV
    return Judgement(risk, f"consul {verb.replace('-', ' ')}", tags)


# --------------------------------------------------------------------------- etcdctl

ETCD = verbs(
    """
    get watch version endpoint-health endpoint-status endpoint-hashkv member-list alarm-list user-list
    user-get role-list role-get auth-status lease-list lease-timetolive snapshot-status check-perf
    check-datascale
    """,
    """
    put lease-grant lease-keep-alive alarm-disarm member-add member-update member-promote user-add
    user-passwd role-add role-grant-permission auth-enable snapshot-save snapshot-restore defrag
    move-leader make-mirror
    """,
    """
    del member-remove compaction lease-revoke user-delete role-delete role-revoke-permission
    user-revoke-role auth-disable
    """,
)
_ETCD_GROUPS = name_set("endpoint member alarm user role auth lease snapshot check")


def reads_kube_secrets(key: str, values: list[str]) -> bool:
    """A key under Kubernetes' `/registry/secrets/`, or a `--prefix`/`--from-key` read that reaches it;
    `--keys-only` and `--count-only` print names and numbers."""
    if "--keys-only" in values or "--count-only" in values:
        return False
    if key.startswith("/registry/secrets"):
        return True
    if "--prefix" in values:
        return "/registry/secrets/".startswith(key)
    return "--from-key" in values and key <= "/registry/secrets/"


@judge("etcdctl")
def judge_etcdctl(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    line = command_line("etcdctl", args, _ETCD_GROUPS)
    if isinstance(line, Judgement):
        return line
    values, words, verb = line
    if verb == "txn":
        return Judgement(U, "etcdctl txn reads its operations from standard input")
    if verb == "user-grant-role":
        role = words[3] if len(words) > 3 else ""
        if role == "root" or privilege.is_admin_name(role):
            return Judgement(D, f"etcdctl grants {role}: administrator power", _PRIV)
        return Judgement(W, f"etcdctl grants the role {role}", _PRIV)
    if verb == "get" and len(words) > 1 and reads_kube_secrets(words[1], values):
        return discloses(f"etcdctl get {words[1]} reads Kubernetes Secrets as stored (/registry/secrets/)")
    risk = ETCD.risk(verb)
    if risk is None:
        return Judgement(U, f"etcdctl {verb.replace('-', ' ')} not understood")
    tags: frozenset[str] = frozenset()
    if verb == "del" and (
        any(v in ("--prefix", "--from-key") for v in values) or (len(words) > 1 and words[1] in ("/", ""))
    ):
        tags = frozenset({"mass"})
    if verb == "compaction":
        tags = frozenset({"irreversible"})
    if verb.startswith(("user-", "role-", "auth-")) and risk is not R:
        tags = tags | _PRIV
    return Judgement(risk, f"etcdctl {verb.replace('-', ' ')}", tags)
