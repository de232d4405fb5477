"""Judges of infrastructure CLIs: kubectl and aws (their own classifiers), terraform, helm, cloud CLIs, docker."""

from __future__ import annotations

import re

from interlock.classify import privilege
from interlock.classify.programs.base import (
    TTY,
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
from interlock.model import Kind


@judge("kubectl", "oc", "aws")
def judge_delegate(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    """kubectl and aws have their own classifiers; they take the command line as text."""
    kind = {"kubectl": Kind.kubectl, "oc": Kind.kubectl, "aws": Kind.aws}[prog]
    values = lit(args)
    if values is None:
        return Judgement(U, f"{prog} argument produced by an expansion")
    line = " ".join([prog if prog != "oc" else "kubectl", *(_quote(v) for v in values)])
    return run.delegate(kind, {"command": line})


def _quote(value: str) -> str:
    if value and re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", value):
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


@judge("terraform", "tofu", "terragrunt")
def judge_terraform(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    values = lit(args)
    if values is None:
        return Judgement(U, f"{prog} argument produced by an expansion")
    words = [v for v in values if not v.startswith("-chdir")]
    sub = next((v for v in words if not v.startswith("-")), "")
    rest = words[words.index(sub) + 1 :] if sub else []
    flags = {v.partition("=")[0] for v in rest if v.startswith("-")}
    operands = [v for v in rest if not v.startswith("-")]
    if (sub == "output" and flags & {"-json", "-raw"}) or (sub == "show" and "-json" in flags):
        # Sensitive values are shown as <sensitive> in the human form, in plain text in -json and -raw.
        return discloses(f"{prog} {sub} {' '.join(sorted(flags & {'-json', '-raw'}))} prints sensitive values")
    if sub == "console":
        # It evaluates any expression against the state; `nonsensitive(…)` prints a sensitive value.
        return discloses(f"{prog} console evaluates expressions over the state, sensitive values included")
    if sub == "state" and operands[:1] == ["pull"]:
        return discloses(f"{prog} state pull prints the state, every secret in it in plain text")
    if sub in ("plan", "show", "validate", "output", "version", "providers", "graph", "console") or (
        sub == "fmt" and flags & {"-check", "-diff"}
    ):
        if sub == "plan" and "-destroy" in flags:
            return Judgement(R, f"{prog} plan -destroy only plans")
        return Judgement(R, f"{prog} {sub} reads")
    if sub in ("init", "fmt", "get", "login", "logout"):
        return Judgement(W, f"{prog} {sub} writes local files")
    if sub == "workspace":
        action = operands[0] if operands else ""
        if action in ("list", "show", ""):
            return Judgement(R, f"{prog} workspace {action}")
        return Judgement(D if action == "delete" else W, f"{prog} workspace {action}")
    if sub == "state":
        action = operands[0] if operands else ""
        if action in ("list", "show", "pull"):
            return Judgement(R, f"{prog} state {action}")
        return Judgement(D, f"{prog} state {action} changes the state", frozenset({"irreversible"}))
    if sub == "destroy" or (sub == "apply" and "-destroy" in flags):
        return Judgement(D, f"{prog} destroy deletes every resource", frozenset({"mass", "irreversible"}))
    if sub == "apply" and flags & {"-replace", "--replace"}:
        # `-replace=ADDR` / `-replace ADDR`: delete and recreate, the Kiro incident's first step.
        return Judgement(D, f"{prog} apply -replace deletes and recreates a resource", frozenset({"replace"}))
    if sub == "apply":
        if operands and "-auto-approve" not in flags:
            return Judgement(D, f"{prog} apply of a saved plan changes infrastructure")
        return Judgement(D, f"{prog} apply changes infrastructure without a reviewed plan")
    if sub == "taint":
        return Judgement(D, f"{prog} taint marks a resource to be deleted and recreated", frozenset({"replace"}))
    if sub in ("import", "untaint", "force-unlock", "refresh", "push"):
        return Judgement(D, f"{prog} {sub} changes the state")
    return Judgement(U, f"{prog} {sub} not understood")


HELM = Verbs(
    read=name_set("list ls status get history show inspect search template lint version env verify help diff"),
    write=name_set("install upgrade package pull fetch dependency dep plugin push create"),
    destructive=name_set("uninstall delete del un rollback"),
)


@judge("helm")
def judge_helm(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    sub, rest = first_operand(args, "nf", ["namespace", "kube-context", "kubeconfig", "values", "set", "version"])
    if sub is None:
        return Judgement(U, "helm subcommand produced by an expansion")
    risk = HELM.risk(sub)
    what = next((w.value for w in rest if w.value and not w.value.startswith("-")), "") if sub == "get" else ""
    if what in ("values", "manifest", "all"):
        # A release's values carry its passwords; its manifest holds its Secrets with their data.
        return discloses(f"helm get {what}")
    if risk is R:
        return Judgement(R, f"helm {sub} reads")
    if risk in (W, D) and any((w.value or "").startswith("--dry-run") for w in rest):
        return Judgement(R, f"helm {sub} --dry-run only renders")
    if sub == "repo":
        action = rest[0].value if rest else ""
        return Judgement(R if action == "list" else D if action == "remove" else W, f"helm repo {action}")
    if risk is W:
        if sub == "upgrade" and any(w.value == "--force" for w in rest):
            return Judgement(D, "helm upgrade --force replaces resources", frozenset({"replace"}))
        return Judgement(W, f"helm {sub} changes releases or files")
    if risk is D:
        return Judgement(D, f"helm {sub} removes or reverts a release")
    return Judgement(U, f"helm {sub} not understood")


_CLOUD_DESTRUCTIVE = re.compile(
    r"^(delete|remove|reset|stop|destroy|purge|terminate|disable|detach|abandon|revoke|undelete|deprovision|suspend|restart|rm)(-|$)"
)


_CLOUD_READ = re.compile(
    r"^(list|describe|show|get|get-iam-policy|read|info|version|help|print-.*|browse|tail|logs|check-.*|exists|show-.*|list-.*|wait|search|export)$"
)


_CLOUD_WRITE = re.compile(
    r"^(create|update|add|set|start|deploy|enable|import|patch|attach|resize|scale|submit|tag|upload|copy|cp|mv|run|execute|login|apply|config|configure|invoke|publish|rollout|move|rename|sync|install|upgrade)(-|$)"
)


#: Command groups whose names read as verbs: the verb comes after them.
_VERB_NAMED_GROUPS = frozenset({("gcloud", "run"), ("gcloud", "deploy"), ("doctl", "apps")})


@judge("gcloud", "az", "gsutil", "doctl")
def judge_cloud(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    values = lit(args)
    if values is None:
        return Judgement(U, f"{prog} argument produced by an expansion")
    words = [v for v in values if not v.startswith("-")]
    granted = cloud_grant(prog, values, words)
    if granted is not None:
        return granted
    disclosed = cloud_disclosure(prog, values, words)
    if disclosed is not None:
        return discloses(f"{prog} {' '.join(words[:5])} {disclosed}")
    # The verb is the first word that looks like one; resource groups come before it (and some
    # groups are named like verbs: `gcloud run services delete`, `gcloud deploy releases create`).
    for position, word in enumerate(words):
        if position == 0 and (prog, word) in _VERB_NAMED_GROUPS:
            continue
        if _CLOUD_DESTRUCTIVE.match(word):
            return Judgement(D, f"{prog} {' '.join(words[: words.index(word) + 1])}")
        if _CLOUD_READ.match(word):
            return Judgement(R, f"{prog} {' '.join(words[: words.index(word) + 1])}")
        if _CLOUD_WRITE.match(word):
            if (prog == "gcloud" and word == "config") or word == "configure":
                continue
            return Judgement(W, f"{prog} {' '.join(words[: words.index(word) + 1])}")
    if any(f in ("--version", "--help", "-h") for f in values):
        return Judgement(R, f"{prog} help")
    return Judgement(U, f"{prog} {' '.join(words[:3])} not understood")


#: Cloud CLI commands that print or hand over a credential, whatever their verb looks like (`print-…`,
#: `show`, `list`): a word that names it, or a group followed by its verb.
_TOKEN_WORD = re.compile(
    r"^(?:print|get|show|generate)-[\w-]*(?:token|credentials?|password|secret)s?$|^config-helper$"
)
_CLOUD_DISCLOSING: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("gcloud", ("secrets", "versions", "access"), "prints a secret's value"),
    ("az", ("keyvault", "secret", "show"), "prints a secret's value"),
    ("az", ("keyvault", "secret", "download"), "writes a secret's value"),
    ("az", ("keyvault", "secret", "backup"), "writes a secret's value (encrypted for Key Vault)"),
    ("az", ("credential", "show"), "prints registry passwords"),
    ("az", ("keys", "list"), "lists the keys' values"),
    ("az", ("list-keys",), "lists the keys' values"),
    ("az", ("generate-sas",), "mints a shared access signature"),
    ("az", ("list-publishing-credentials",), "prints deployment passwords"),
    ("az", ("list-publishing-profiles",), "prints deployment passwords"),
    ("doctl", ("kubeconfig", "show"), "prints a kubeconfig with its token"),
    ("doctl", ("kubeconfig", "save"), "writes a kubeconfig with its token"),
    ("doctl", ("registry", "docker-config"), "prints registry credentials"),
    ("doctl", ("databases", "connection"), "prints a database's password"),
    ("doctl", ("databases", "user", "get"), "prints a user's password"),
    ("doctl", ("databases", "user", "list"), "prints users' passwords"),
)


def cloud_disclosure(prog: str, values: list[str], words: list[str]) -> str | None:
    """What a gcloud, az or doctl command discloses of a credential, or None."""
    token = next((w for w in words if _TOKEN_WORD.match(w)), None)
    if token is not None:
        return f"({token})"
    if "--expose-token" in values:
        return "prints a registry token"
    if "show-connection-string" in words:
        return "prints a connection string with its key"
    for name, run, what in _CLOUD_DISCLOSING:
        if name == prog and any(tuple(words[i : i + len(run)]) == run for i in range(len(words))):
            return what
    return None


#: Cloud roles broad enough to be administrator power though their names do not say so.
_BROAD_ROLES = frozenset({"roles/editor", "contributor"})


def _option(values: list[str], name: str) -> str | None:
    for i, v in enumerate(values):
        if v == name and i + 1 < len(values):
            return values[i + 1]
        if v.startswith(name + "="):
            return v.partition("=")[2]
    return None


def cloud_grant(prog: str, values: list[str], words: list[str]) -> Judgement | None:
    """Granting roles and minting credentials with gcloud and az (aws goes to its own classifier):
    an administrator, owner or broad role, or a new credential, is destructive + `privilege`; a
    narrow role is write + `privilege` (the line of classify/privilege.py)."""
    priv = frozenset({"privilege"})
    role = _option(values, "--role")
    granting = (prog == "gcloud" and any(w.endswith("add-iam-policy-binding") for w in words)) or (
        prog == "az" and (words[:3] == ["role", "assignment", "create"] or "create-for-rbac" in words)
    )
    if granting:
        if role is None:
            return Judgement(U, f"{prog} grants a role we cannot see", priv)
        # `az ad sp create-for-rbac` also prints the new principal's password.
        minted = priv | {"secrets"} if "create-for-rbac" in words else priv
        if privilege.is_admin_name(role) or role.lower() in _BROAD_ROLES:
            return Judgement(D, f"{prog} grants {role}: administrator power", minted)
        return Judgement(W, f"{prog} grants the narrow role {role}", minted)
    if prog == "gcloud" and "set-iam-policy" in words:
        return Judgement(D, "gcloud set-iam-policy replaces who may do what", priv | {"replace"})
    if (prog == "gcloud" and "keys" in words and "create" in words) or (
        prog == "az" and "credential" in words and "reset" in words
    ):
        return Judgement(D, f"{prog} mints a credential", priv | {"secrets"})
    return None


@judge("docker", "podman", "nerdctl")
def judge_docker(prog: str, args: list[Word], stdin: Stdin, run: Runner) -> Judgement:
    sub, rest = first_operand(args, "Hc", ["host", "context", "config", "log-level"])
    if sub is None:
        return Judgement(U, f"{prog} subcommand produced by an expansion")
    values = [w.value or "" for w in rest]
    if sub in name_set(
        """
        compose container image volume network system builder buildx context node service stack secret
        config
        """
    ):
        obj = sub
        sub2, rest2 = first_operand(rest, "fp", ["file", "project-name", "profile", "env-file"])
        if sub2 is None:
            return Judgement(U, f"{prog} {obj} subcommand produced by an expansion")
        if obj == "compose":
            if sub2 == "config" and not any(w.value in ("--no-interpolate", "--services", "--volumes", "-q",
                                                        "--quiet", "--images", "--profiles") for w in rest2):
                # It prints the project with `.env` and the environment interpolated: their secrets too.
                return discloses(f"{prog} compose config prints the project with .env's values")
            if sub2 in ("ps", "logs", "config", "images", "ls", "top", "version", "port", "events", "ls"):
                return Judgement(R, f"{prog} compose {sub2}")
            if sub2 in ("down", "rm", "kill", "stop", "restart", "pause"):
                tags = (
                    frozenset({"mass"}) if any(w.value in ("-v", "--volumes", "--rmi") for w in rest2) else frozenset()
                )
                return Judgement(D, f"{prog} compose {sub2} stops or removes services", tags)
            if sub2 in ("up", "build", "pull", "push", "create", "start", "run", "exec", "cp", "unpause"):
                if sub2 in ("run", "exec"):
                    return Judgement(U, f"{prog} compose {sub2} runs a command inside a container")
                return Judgement(W, f"{prog} compose {sub2}")
            return Judgement(U, f"{prog} compose {sub2} not understood")
        if sub2 in name_set("ls list inspect df info history events logs top stats port diff ps"):
            return Judgement(R, f"{prog} {obj} {sub2}")
        if sub2 in ("rm", "remove", "prune", "kill", "stop", "restart", "leave"):
            tags = frozenset({"mass"}) if sub2 == "prune" else frozenset()
            return Judgement(
                D,
                f"{prog} {obj} {sub2} removes or stops",
                tags | {"irreversible"} if obj == "volume" else tags,
            )
        if sub2 in name_set("create build pull push tag load import save connect disconnect start update use rename"):
            return Judgement(W, f"{prog} {obj} {sub2}")
        if sub2 in ("run", "exec"):
            return Judgement(U, f"{prog} {obj} {sub2} runs a command inside a container")
        return Judgement(U, f"{prog} {obj} {sub2} not understood")
    if sub in (
        "ps",
        "images",
        "logs",
        "inspect",
        "version",
        "info",
        "stats",
        "top",
        "port",
        "diff",
        "history",
        "events",
        "search",
        "help",
        "",
    ):
        return Judgement(R, f"{prog} {sub} reads")
    if sub in ("rm", "rmi", "kill", "stop", "restart", "pause"):
        return Judgement(
            D,
            f"{prog} {sub} removes or stops containers",
            frozenset({"mass"}) if "-a" in values or "--all" in values else frozenset(),
        )
    if sub == "run":
        if any(v == "--privileged" or v.startswith("--pid=host") or re.match(r"^/:", v) for v in values) or any(
            v in ("-v", "--volume") and i + 1 < len(values) and values[i + 1].startswith("/:")
            for i, v in enumerate(values)
        ):
            return Judgement(D, f"{prog} run with host privileges", frozenset({"privilege"}))
        return Judgement(W, f"{prog} run starts a container")
    if sub in name_set(
        "build pull push tag create start login logout load import commit cp save unpause rename update"
    ):
        return Judgement(W, f"{prog} {sub}")
    if sub == "exec":
        return judge_container_exec(prog, rest, run)
    return Judgement(U, f"{prog} {sub} not understood")


def judge_container_exec(prog: str, args: list[Word], run: Runner) -> Judgement:
    """`docker exec [options] CONTAINER CMD…`: the command is judged as if it ran here."""
    takes = name_set("-u --user -w --workdir -e --env --env-file --detach-keys")
    i = 0
    while i < len(args) and (args[i].value or "").startswith("-"):
        i += 2 if args[i].value in takes else 1
    if i >= len(args) or args[i].value is None:
        return Judgement(U, f"{prog} exec: container not understood")
    inner = args[i + 1 :]
    if not inner:
        return Judgement(U, f"{prog} exec without a command")
    nested = run.argv(inner, TTY)
    return Judgement(nested.risk, f"{prog} exec {args[i].show}: {nested.reason}", nested.tags, nested.paths)
