"""The kubectl classifier: what would this kubectl command do to the cluster?

The command line is split like a POSIX shell would (`shlex`), global flags are accepted anywhere
(`kubectl -n prod delete pod x` = `kubectl delete pod x -n prod`), and the verb, resources,
namespace and scope (`--all`, `-A`, selectors) are read from it.

Decisions (documented in docs/classifiers.md):

- `delete` is destructive; deleting a namespace, node, PV/PVC or CRD takes everything in or on
  it with it, so it is also `mass`. `drain` (evicts every pod of a node) is destructive + `mass`.
- `scale --replicas=0` is destructive; `replace --force` and `apply --force` delete and
  recreate (destructive + `replace`); `apply --prune` deletes what is not in the files.
- `exec` runs a command in a production container: at least write, and as risky as the command
  (judged by the shell classifier); interactive (`-it`) or without a command it is unknown.
  `attach` and `debug` are unknown for the same reason.
- Any `--dry-run` other than `none` changes nothing: read.
- Printing a Secret's data (`get secret -o yaml|json`, a template or columns reading `.data`,
  `get --raw` of the secrets API) or the raw kubeconfig (`config view --raw`) discloses a secret's
  value: the registry makes it at least write. Names, types and key sizes (`get secrets`,
  `-o name`, `describe secret`) stay read.
- A verb or plugin we do not know is unknown.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from interlock.classify import privilege, registry
from interlock.classify.registry import DISCLOSES, ClassifyContext, register, unaccepted, unknown
from interlock.classify.words import split_words
from interlock.model import Classification, Kind, Risk

#: Flags that take a value in the next word when not written `--flag=value`.
VALUE_FLAGS = frozenset(
    {
        "-n",
        "--namespace",
        "--context",
        "--cluster",
        "--kubeconfig",
        "--user",
        "-s",
        "--server",
        "--token",
        "--as",
        "--as-group",
        "--as-uid",
        "--request-timeout",
        "--certificate-authority",
        "--client-certificate",
        "--client-key",
        "--tls-server-name",
        "-v",
        "--v",
        "--cache-dir",
        "--profile",
        "--profile-output",
        "--password",
        "--username",
        "-l",
        "--selector",
        "--field-selector",
        "-o",
        "--output",
        "-f",
        "--filename",
        "-c",
        "--container",
        "--replicas",
        "--current-replicas",
        "--type",
        "--image",
        "--port",
        "-p",
        "--patch",
        "--patch-file",
        "--grace-period",
        "--timeout",
        "--to-revision",
        "--for",
        "--sort-by",
        "--template",
        "-k",
        "--kustomize",
        "--from-literal",
        "--from-file",
        "--from-env-file",
        "--from",
        "--field-manager",
        "--since",
        "--since-time",
        "--tail",
        "--max",
        "--min",
        "--cpu-percent",
        "--name",
        "--target-port",
        "--protocol",
        "--env",
        "-e",
        "--limits",
        "--requests",
        "--serviceaccount",
        "--role",
        "--clusterrole",
        "--group",
        "--verb",
        "--resource",
        "--resource-name",
        "--subresource",
        "--chunk-size",
        "--pod-running-timeout",
        "--prune-allowlist",
        "--overrides",
        "--labels",
        "--target",
        "--copy-to",
        "--address",
        "--duration",
        "--audience",
        "--restart",
        "--docker-server",
        "--docker-username",
        "--docker-password",
        "--docker-email",
        "--cert",
        "--key",
        "--columns",
        "--level",
        "--api-group",
        "--namespace-selector",
    }
)

READ_VERBS = frozenset(
    {
        "get",
        "describe",
        "logs",
        "top",
        "explain",
        "api-resources",
        "api-versions",
        "version",
        "cluster-info",
        "diff",
        "events",
        "wait",
        "completion",
        "options",
        "help",
        "kustomize",
    }
)
WRITE_VERBS = frozenset(
    {
        "apply",
        "create",
        "patch",
        "label",
        "annotate",
        "set",
        "expose",
        "autoscale",
        "edit",
        "cp",
        "port-forward",
        "taint",
        "cordon",
        "uncordon",
        "run",
        "scale",
        "replace",
        "proxy",
        "certificate",
    }
)
#: Every verb kubectl itself has (a plugin is any other word, and receives `--help` itself).
BUILT_IN_VERBS = READ_VERBS | WRITE_VERBS | frozenset(
    {"delete", "drain", "exec", "attach", "debug", "rollout", "config", "auth", "plugin", "alpha", "certificate",
     "annotate", "kustomize"}
)
#: Verbs that hand a person or a program an open session in a container: cannot be judged.
INTERACTIVE_VERBS = frozenset({"attach", "debug"})
READ_SUBVERBS = {
    "rollout": frozenset({"status", "history"}),
    "config": frozenset({"view", "get-contexts", "current-context", "get-clusters", "get-users"}),
    "auth": frozenset({"can-i", "whoami"}),
}
RBAC_RESOURCES = frozenset({"clusterrolebindings", "rolebindings", "clusterroles", "roles", "serviceaccounts"})
#: Deleting one of these deletes everything in or on it.
CONTAINER_RESOURCES = frozenset(
    {"namespaces", "nodes", "persistentvolumes", "persistentvolumeclaims", "customresourcedefinitions"}
)
SHORT_NAMES = {
    "po": "pods",
    "svc": "services",
    "deploy": "deployments",
    "ns": "namespaces",
    "no": "nodes",
    "pv": "persistentvolumes",
    "pvc": "persistentvolumeclaims",
    "crd": "customresourcedefinitions",
    "crds": "customresourcedefinitions",
    "cm": "configmaps",
    "sa": "serviceaccounts",
    "rs": "replicasets",
    "sts": "statefulsets",
    "ds": "daemonsets",
    "ing": "ingresses",
    "netpol": "networkpolicies",
    "hpa": "horizontalpodautoscalers",
    "cj": "cronjobs",
    "ep": "endpoints",
    "ev": "events",
    "pdb": "poddisruptionbudgets",
    "sc": "storageclasses",
    "rc": "replicationcontrollers",
    "limits": "limitranges",
    "quota": "resourcequotas",
    "csr": "certificatesigningrequests",
    "ingress": "ingresses",
    "policy": "podsecuritypolicies",
    "priorityclass": "priorityclasses",
    "pc": "priorityclasses",
    "endpoints": "endpoints",
}
SHELLS = frozenset({"sh", "bash", "zsh", "ash", "dash", "ksh", "fish", "python", "python3", "perl", "ruby", "node"})


@dataclass
class Invocation:
    """A kubectl command line, read."""

    words: list[str]
    flags: dict[str, str] = field(default_factory=dict)
    after_dashes: list[str] = field(default_factory=list)
    #: Every value of every flag, in order (`--verb=get --verb=list`, `--group a --group b`).
    every: dict[str, list[str]] = field(default_factory=dict)
    #: `--help`, `-h` or `--help=true` as its own word: kubectl prints help and runs nothing.
    help: bool = False

    @property
    def verb(self) -> str:
        return self.words[0] if self.words else ""

    def has(self, *names: str) -> bool:
        return any(name in self.flags for name in names)

    def value(self, *names: str) -> str | None:
        for name in names:
            if name in self.flags:
                return self.flags[name]
        return None

    def values(self, *names: str) -> list[str]:
        """Every value given to these flags, comma-separated lists split (`--verb=get,list`)."""
        return [part for name in names for value in self.every.get(name, []) for part in value.split(",") if part]

    def set(self, name: str, value: str) -> None:
        self.flags[name] = value
        self.every.setdefault(name, []).append(value)


@register(Kind.kubectl)
def classify_kubectl(payload: dict[str, Any], context: ClassifyContext) -> Classification:
    args = command_words(payload)
    if args is None:
        return unaccepted(Kind.kubectl, "kubectl action without a readable `command` or `args`")
    if not args or args[0].rsplit("/", 1)[-1] not in ("kubectl", "oc", "kubectl.exe"):
        return unaccepted(Kind.kubectl, "not a kubectl command line")
    invocation = read_invocation(args[1:])
    if invocation is None:
        return unknown("kubectl command line we cannot read (a flag is missing its value)")
    return judge(invocation)


def command_words(payload: dict[str, Any]) -> list[str] | None:
    args = payload.get("args")
    if isinstance(args, list) and all(isinstance(a, str) for a in args):
        return args if not args or args[0].endswith(("kubectl", "oc", "kubectl.exe")) else ["kubectl", *args]
    command = payload.get("command")
    if not isinstance(command, str):
        return None
    try:
        return split_words(command)
    except ValueError:
        return None


def read_invocation(args: list[str]) -> Invocation | None:
    invocation = Invocation(words=[])
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            invocation.after_dashes = args[index + 1 :]
            break
        if arg in ("-h", "--help") or (arg.startswith("--help=") and arg[7:] in GO_TRUE):
            invocation.help = True
        if arg.startswith("--") and "=" in arg:
            name, _, value = arg.partition("=")
            invocation.set(name, value)
        elif arg in ("-f", "-p") and invocation.words[:1] == ["logs"]:
            invocation.flags[arg] = ""  # logs -f is --follow, -p is --previous
        elif arg in VALUE_FLAGS:
            if index + 1 >= len(args):
                return None
            invocation.set(arg, args[index + 1])
            index += 1
        elif arg.startswith("-") and len(arg) > 2 and not arg.startswith("--") and arg[:2] in VALUE_FLAGS:
            invocation.set(arg[:2], arg[2:])  # -nprod, -lapp=x
        elif arg.startswith("-") and len(arg) > 1:
            if not arg.startswith("--") and len(arg) > 2:
                for letter in arg[1:]:  # -it = -i -t
                    invocation.flags[f"-{letter}"] = ""
            else:
                invocation.flags[arg] = ""
        else:
            invocation.words.append(arg)
        index += 1
    return invocation


def normalize_resource(name: str) -> str:
    kind = name.lower().split(".", 1)[0]
    kind = SHORT_NAMES.get(kind, kind)
    if kind.endswith("y") and not kind.endswith(("ey", "ay")):
        return kind[:-1] + "ies"  # networkpolicy → networkpolicies
    if kind.endswith(("ss", "sh", "x")):
        return kind + "es"  # ingress → ingresses
    return kind if kind.endswith("s") else kind + "s"


def resources_of(words: list[str]) -> list[dict[str, str]]:
    """`pod/x svc/y`, `pods x y`, `pods,svc` → [{type, name}]."""
    if not words:
        return []
    if any("/" in word for word in words):
        found = []
        for word in words:
            kind, _, name = word.partition("/")
            found.append({"type": normalize_resource(kind), "name": name})
        return found
    kinds = [normalize_resource(k) for k in words[0].split(",") if k]
    names = words[1:]
    if not names:
        return [{"type": kind, "name": "*"} for kind in kinds]
    return [{"type": kind, "name": name} for kind in kinds for name in names]


#: Verbs whose first word is a pod (or `type/name`), not a resource type.
POD_VERBS = frozenset({"exec", "logs", "attach", "port-forward", "debug", "cp"})


def pod_of(word: str) -> dict[str, str]:
    if "/" in word:
        kind, _, name = word.partition("/")
        return {"type": normalize_resource(kind), "name": name}
    return {"type": "pods", "name": word}


DRY_RUN_VALUES = frozenset({"", "client", "server", "true"})


def is_zero(value: str | None) -> bool:
    """`--replicas=0`, `=00`, `=+0`: kubectl parses an integer."""
    if value is None:
        return False
    try:
        return int(value) == 0
    except ValueError:
        return False


@dataclass
class Judgement:
    risk: Risk
    tags: set[str] = field(default_factory=set)
    why: str = ""


#: What Go's strconv.ParseBool reads as true (`--help=true`).
GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


def judge(inv: Invocation) -> Classification:
    verb = inv.verb
    if inv.help and (verb in BUILT_IN_VERBS or not verb):
        # cobra prints help for `--help`/`-h` anywhere and runs nothing; a plugin gets the flag itself,
        # so only kubectl's own verbs count.
        what = f"kubectl {verb} --help" if verb else "kubectl --help"
        return Classification(risk=Risk.read, summary=f"{what}: prints help, runs nothing", details={"verb": verb})
    subverb = inv.words[1] if len(inv.words) > 1 else ""
    resource_words = inv.words[1:]
    if verb in ("rollout", "create", "set", "config", "auth", "top", "certificate") and subverb:
        resource_words = inv.words[2:]
    if verb == "create" and subverb in ("secret", "configmap", "service") and len(inv.words) > 2:
        resource_words = [f"{subverb}s", *inv.words[3:4]]
    elif verb == "create" and subverb:
        resource_words = [subverb, *inv.words[2:3]]
    resources = resources_of(resource_words)
    if verb in ("drain", "cordon", "uncordon"):
        resources = [{"type": "nodes", "name": name} for name in inv.words[1:]]
    elif verb in POD_VERBS:
        resources = [pod_of(word) for word in inv.words[1:2] if ":" not in word]
    elif verb == "taint":
        resources = resources_of(inv.words[1:3])
    elif verb in (
        "config",
        "auth",
        "certificate",
        "version",
        "api-resources",
        "api-versions",
        "cluster-info",
    ):
        resources = []
    judgement = judge_verb(inv, verb, subverb, resources)
    scope = scope_of(inv)
    if judgement.risk is not Risk.read and verb not in ("exec", "logs") and scope:
        judgement.tags.add("mass")
    # Only the values kubectl treats as a dry run count: `--dry-run=false` (old boolean form) runs it.
    dry_run = inv.value("--dry-run")
    if dry_run is not None and dry_run.lower() in DRY_RUN_VALUES and verb not in ("exec", "attach", "debug", "cp"):
        judgement = Judgement(Risk.read, set(), f"dry run of {verb}: changes nothing")
    kinds = {r["type"] for r in resources}
    if kinds & RBAC_RESOURCES and judgement.risk is not Risk.read:
        judgement.tags.add("privilege")
        escalation = rbac_escalation(inv, verb, subverb, resources)
        if escalation is not None:
            judgement = Judgement(Risk.highest([judgement.risk, escalation[0]]), judgement.tags, escalation[1])
    disclosed = disclosure(inv, verb, subverb, kinds)
    if "secrets" in kinds or disclosed is not None:
        judgement.tags.add("secrets")
    namespace = inv.value("-n", "--namespace")
    details: dict[str, Any] = {
        "verb": " ".join(inv.words[:2]) if verb in READ_SUBVERBS or verb == "rollout" else verb,
        "resources": resources,
        "namespace": "*" if inv.has("-A", "--all-namespaces") else namespace,
        "all": inv.has("--all"),
        "selector": inv.value("-l", "--selector"),
        "field_selector": inv.value("--field-selector"),
    }
    if inv.value("--context"):
        details["context"] = inv.value("--context")
    if disclosed is not None:
        details[DISCLOSES] = disclosed
    summary = summarize(inv, judgement, resources, namespace, scope)
    return Classification(risk=judgement.risk, tags=tuple(judgement.tags), summary=summary, details=details)


#: What Go's strconv.ParseBool reads as false (`--raw=false`).
GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
#: The Kubernetes API's paths to Secrets (`/api/v1/secrets`, `/api/v1/namespaces/prod/secrets/db`): a GET
#: returns their data, a list included (http.KUBE_SECRETS is the same behind any proxy prefix).
KUBE_SECRETS_API = re.compile(r"^/api/v1/(?:watch/)?(?:namespaces/[^/]+/)?secrets(?:/[^/]+)?/?$")
#: Output formats that print what a template or column list picks (judged by the fields it reads).
TEMPLATE_OUTPUTS = frozenset({"jsonpath", "go-template", "template", "custom-columns", "jsonpath-as-json"})
#: Fields of a Secret that hold no value: its name and the like. Not `annotations`: one written by
#: `kubectl apply` (`last-applied-configuration`) holds the whole object, data included.
NAME_FIELDS = re.compile(
    r"\.(?:items(?:\[[^\]]*\])?\.)?(?:metadata\.(?:name|namespace|uid|creationTimestamp|resourceVersion|labels"
    r"(?:\.[\w./-]+|\[[^\]]*\])?)|type|kind|apiVersion)\b"
)
_QUOTED = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'")
_RANGE_ITEMS = re.compile(r"\brange\s+\.items(?:\[[^\]]*\])?")


def disclosure(inv: Invocation, verb: str, subverb: str, kinds: set[str]) -> str | None:
    """What the command prints of a secret's value (for `registry.DISCLOSES`), or None when it shows
    names and metadata only."""
    if verb == "config" and subverb == "view" and inv.has("--raw") and inv.value("--raw") not in GO_FALSE:
        return "the raw kubeconfig (its tokens and keys)"
    if verb != "get":
        return None
    raw = inv.value("--raw")
    if raw is not None:  # `get --raw PATH`: the parser took `--raw` as a switch, so PATH is the first word
        path = raw or (inv.words[1] if len(inv.words) > 1 else "")
        return "Secrets' data from the API" if KUBE_SECRETS_API.match(path.split("?", 1)[0]) else None
    if "secrets" not in kinds:
        return None
    output = inv.value("-o", "--output")
    template = inv.value("--template")
    if output is None and template is None:
        return None  # the table: names, types, key counts, ages
    form, _, spec = (output or "go-template").removeprefix("=").partition("=")
    form = form.lower()
    if form in ("name", "wide"):
        return None
    # yaml, json and any format we do not know print whole objects; templates and columns are read.
    if form == "custom-columns" and not columns_read_values(spec or template or ""):
        return None
    if form in TEMPLATE_OUTPUTS - {"custom-columns"} and not template_reads_values(spec or template or ""):
        return None
    return f"Secrets' data (-o {form})"


#: Top-level fields of a Secret that hold no value (custom-columns may name them without a leading dot).
NAME_ROOTS = re.compile(
    r"^\{?\.?(?:metadata\.(?:name|namespace|uid|creationTimestamp|resourceVersion|labels(?:\.[\w./-]+)?)"
    r"|type|kind|apiVersion)\}?$"
)


def columns_read_values(spec: str) -> bool:
    """Whether a custom-columns spec (`NAME:.metadata.name,PW:data.password`) prints a field other than
    names: kubectl relaxes each column's path (`data`, `.data`, `{.data}` are the same), so each is
    judged whole. An empty spec (the columns are in a file) may print anything."""
    columns = [column.partition(":")[2].strip() for column in spec.split(",") if column.strip()]
    return not columns or any(not NAME_ROOTS.match(column) for column in columns)


#: A bracketed field name (`{['data']}`, `{.items[*]["data"]}`): quoted, but a field, not text.
_BRACKETED = re.compile(r"\[\s*(['\"]?)([A-Za-z_][\w.-]*)\1\s*\]")
NAME_KEYS = frozenset({"metadata", "name", "namespace", "uid", "labels", "type", "kind", "apiversion",
                       "creationtimestamp", "resourceversion"})


def template_reads_values(text: str) -> bool:
    """Whether a jsonpath or go-template spec may print more than names: after taking
    away quoted text, `range .items` and the name fields, any field reference left (`.data`, `{@}`,
    `{{.}}`, `..`) may print values. An empty spec (the template is in a file) may too."""
    if not text.strip():
        return True
    if any(name.lower() not in NAME_KEYS for _, name in _BRACKETED.findall(text)):
        return True
    if "{" not in text:
        return True  # a relaxed path (`data`) or something kubectl reads another way: may print values
    rest = NAME_FIELDS.sub("", _RANGE_ITEMS.sub("", _QUOTED.sub("", text)))
    return any(mark in rest for mark in (".", "@", "$", "index", "json", "yaml"))


def scope_of(inv: Invocation) -> str:
    if inv.has("--all"):
        return "--all"
    if inv.has("-A", "--all-namespaces"):
        return "all namespaces"
    selector = inv.value("-l", "--selector") or inv.value("--field-selector")
    return f"selector {selector}" if selector is not None else ""


def judge_verb(inv: Invocation, verb: str, subverb: str, resources: list[dict[str, str]]) -> Judgement:
    kinds = {r["type"] for r in resources}
    if verb in READ_SUBVERBS:
        if subverb in READ_SUBVERBS[verb]:
            return Judgement(Risk.read)
        if verb == "auth" and subverb == "reconcile":
            return Judgement(Risk.write, {"privilege"}, "reconciles RBAC roles and bindings")
        if verb == "rollout" and subverb in ("restart", "pause", "resume", "undo"):
            return Judgement(Risk.write)
        if verb == "config" and subverb:
            return Judgement(Risk.write, set(), "changes the local kubeconfig")
        return Judgement(Risk.unknown, set(), f"unknown `{verb} {subverb}`")
    if verb in READ_VERBS:
        return Judgement(Risk.read)
    if verb == "delete":
        tags = {"mass"} if kinds & CONTAINER_RESOURCES else set()
        if inv.has("--force") or inv.value("--grace-period") == "0":
            tags.add("irreversible")
        why = "everything in it goes too" if "namespaces" in kinds else ""
        return Judgement(Risk.destructive, tags, why)
    if verb == "drain":
        return Judgement(Risk.destructive, {"mass"}, "evicts every pod on the node")
    if verb == "exec":
        return judge_exec(inv)
    if verb in INTERACTIVE_VERBS:
        return Judgement(Risk.unknown, {"interpreter"}, f"`{verb}` opens a session in a container")
    if verb == "scale":
        if is_zero(inv.value("--replicas")):
            return Judgement(Risk.destructive, set(), "scales to zero replicas: the service stops")
        return Judgement(Risk.write)
    if verb == "patch":
        effect = patch_effect(inv.value("-p", "--patch") or "")
        if effect is not None:
            return Judgement(Risk.destructive, set(), effect)
    if verb in ("replace", "apply") and inv.has("--force"):
        return Judgement(Risk.destructive, {"replace"}, f"{verb} --force deletes and recreates")
    if verb == "apply" and inv.has("--prune"):
        return Judgement(Risk.destructive, {"mass"}, "apply --prune deletes what is not in the files")
    if verb == "taint" and any(word.endswith(":NoExecute") for word in inv.words):
        return Judgement(Risk.destructive, {"mass"}, "a NoExecute taint evicts running pods")
    if verb == "create" and subverb == "token":
        return Judgement(Risk.destructive, {"privilege", "secrets"},
                         "mints a token: whoever holds it acts as the service account")
    if verb == "certificate" and subverb == "approve":
        return Judgement(Risk.destructive, {"privilege"}, "approving a signing request mints a client certificate")
    if verb == "certificate":
        return Judgement(Risk.write, {"privilege"}, f"certificate {subverb}")
    if verb == "proxy":
        return Judgement(Risk.write, {"network"}, "exposes the API server locally")
    if verb in WRITE_VERBS:
        return Judgement(Risk.write)
    if not verb:
        return Judgement(Risk.unknown, set(), "no kubectl verb")
    return Judgement(Risk.unknown, set(), f"unknown kubectl verb or plugin `{verb}`")


EVERYONE = privilege.EVERYONE_SUBJECTS
BINDINGS = frozenset({"clusterrolebindings", "rolebindings"})


def rbac_escalation(inv: Invocation, verb: str, subverb: str,
                    resources: list[dict[str, str]]) -> tuple[Risk, str] | None:
    """A change to RBAC that grants administrator power (docs/classifiers.md, "Privilege escalation")."""
    if verb == "create" and subverb in ("clusterrolebinding", "rolebinding"):
        role = inv.value("--clusterrole", "--role")
        if role is not None and privilege.is_admin_name(role):
            return Risk.destructive, f"binds {role}: administrator power"
        everyone = sorted(set(inv.values("--group", "--user")) & EVERYONE)
        return (Risk.destructive, f"binds it to {everyone[0]}: everyone") if everyone else None
    if verb == "create" and subverb in ("clusterrole", "role"):
        why = privilege.rbac_rules_power([{"verbs": inv.values("--verb"), "resources": inv.values("--resource")}])
        return (Risk.destructive, why) if why else None
    binding = next((r["name"] for r in resources if r["type"] in BINDINGS and privilege.is_admin_name(r["name"])), None)
    if verb in ("set", "patch", "edit", "replace", "apply") and binding is not None:
        return Risk.destructive, f"changes the administrator binding {binding}"
    if verb == "set" and subverb == "subject":
        everyone = sorted(set(inv.values("--group", "--user")) & EVERYONE)
        return (Risk.destructive, f"adds {everyone[0]}: everyone") if everyone else None
    if verb == "patch":
        if inv.value("--patch-file") is not None:
            return Risk.unknown, "the RBAC patch is in a file we cannot see"
        return patch_power(inv.value("-p", "--patch") or "")
    return None


def patch_effect(text: str) -> str | None:
    """What a patch does that `scale` or `delete` would be judged destructive for: zero replicas
    (`{"spec":{"replicas":0}}`, a JSON patch replacing `/spec/replicas` with 0), or finalizers taken
    away (`{"metadata":{"finalizers":null}}`, `remove /metadata/finalizers`): the object goes
    without its cleanup. None when it does neither, or cannot be read (judged as a patch)."""
    try:
        document = load_yaml_documents(text)
    except Unreadable:
        return None
    for node in walk(document):
        if not isinstance(node, dict):
            continue
        if "replicas" in node and is_zero(str(node["replicas"])):
            return "patches to zero replicas: the service stops"
        if node.get("finalizers", ()) in (None, []) or (
            node.get("path") in ("/spec/replicas", "/metadata/finalizers")
            and (node.get("op") == "remove" or is_zero(str(node.get("value"))))
        ):
            return "takes the finalizers away or scales to zero"
    return None


def patch_power(text: str) -> tuple[Risk, str] | None:
    """A strategic, merge or JSON patch (JSON or YAML text) that adds administrator rules or bindings."""
    try:
        document = load_yaml_documents(text)
    except Unreadable as exc:
        return Risk.unknown, f"a patch we cannot judge ({exc})"
    rules = [node for node in walk(document) if isinstance(node, dict) and "verbs" in node]
    why = privilege.rbac_rules_power(rules)
    if why is not None:
        return Risk.destructive, why
    refs = [node.get("roleRef") for node in walk(document) if isinstance(node, dict) and "roleRef" in node]
    admin = next((r["name"] for r in refs if isinstance(r, dict) and privilege.is_admin_name(str(r.get("name")))),
                 None)
    return (Risk.destructive, f"binds {admin}: administrator power") if admin else None


def walk(node: Any, depth: int = 0) -> list[Any]:
    """Every object and list in parsed JSON/YAML, at most 20 levels deep."""
    found = [node]
    if depth < 20 and isinstance(node, dict):
        for value in node.values():
            found.extend(walk(value, depth + 1))
    elif depth < 20 and isinstance(node, list):
        for value in node:
            found.extend(walk(value, depth + 1))
    return found


class Unreadable(Exception):
    """Manifest text too big or too deep to judge, though kubectl might still apply it."""


def load_yaml_documents(text: str) -> list[Any]:
    """JSON or (multi-document) YAML text, parsed safely; [] when it is neither (kubectl refuses it too).

    Raises `Unreadable` for text kubectl could apply but we will not parse: too big or nested too deep.
    """
    if len(text) > MAX_MANIFEST:
        raise Unreadable(f"more than {MAX_MANIFEST:,} characters")
    if not text.strip():
        return []
    try:
        return [json.loads(text)]
    except RecursionError:
        raise Unreadable("nested too deep") from None
    except ValueError:
        pass
    from ruamel.yaml import YAML  # imported here: most kubectl lines carry no manifest

    try:
        return [doc for doc in YAML(typ="safe").load_all(text) if doc is not None]
    except RecursionError:
        raise Unreadable("nested too deep") from None
    except Exception:  # ruamel raises many error types for bad YAML; any of them means "not a manifest"
        return []


#: Larger than any manifest a person writes; bigger text is not parsed (and is judged without it).
MAX_MANIFEST = 1_000_000
RBAC_KINDS = frozenset({"ClusterRoleBinding", "RoleBinding", "ClusterRole", "Role"})


def manifest_privilege(text: str) -> tuple[Risk, str] | None:
    """Kubernetes manifests (YAML or JSON text) that grant access: (risk, why), None when none is RBAC.

    Used where a manifest's text is visible: MCP tools that apply manifests (`kubectl_apply
    {"manifest": …}`), and for the shell door (`kubectl apply -f - <<EOF`).
    """
    found: tuple[Risk, str] | None = None
    try:
        documents = load_yaml_documents(text)
    except Unreadable as exc:
        return Risk.unknown, f"is a manifest we cannot judge ({exc})"
    for document in documents:
        for item in document.get("items", [document]) if isinstance(document, dict) else []:
            if not isinstance(item, dict) or item.get("kind") not in RBAC_KINDS:
                continue
            why = privilege.manifest_power(item)
            if why is not None:
                return Risk.destructive, why
            found = (Risk.write, f"{item.get('kind')} with named verbs and resources")
    return found


def judge_exec(inv: Invocation) -> Judgement:
    command = inv.after_dashes
    interactive = inv.has("-i", "-t", "--stdin", "--tty")
    if not command:
        return Judgement(Risk.unknown, {"interpreter"}, "exec without a command")
    program = command[0].rsplit("/", 1)[-1]
    if interactive or (program in SHELLS and len(command) == 1):
        return Judgement(Risk.unknown, {"interpreter"}, "an interactive session in a container")
    inner = registry.classify(Kind.shell, {"command": shlex.join(command)})
    risk = Risk.highest([Risk.write, inner.risk])
    return Judgement(risk, set(inner.tags), f"runs `{shorten(shlex.join(command), 60)}` in the container")


def summarize(
    inv: Invocation, judgement: Judgement, resources: list[dict[str, str]], namespace: str | None, scope: str
) -> str:
    verb = " ".join(inv.words[:2]) if inv.verb in READ_SUBVERBS or inv.verb == "rollout" else inv.verb
    things = ", ".join(f"{r['type']}/{r['name']}" for r in resources[:4])
    if not things:
        words = inv.words[2:4] if inv.verb in READ_SUBVERBS else inv.words[1:3]
        from_files = inv.verb != "logs" and inv.has("-f", "--filename", "-k", "--kustomize")
        things = "resources from files" if from_files else " ".join(words)
    if len(resources) > 4:
        things += f" and {len(resources) - 4} more"
    where = "in all namespaces" if inv.has("-A", "--all-namespaces") else f"in namespace {namespace or '(current)'}"
    text = f"kubectl {verb} {things} {where}"
    if scope and scope != "all namespaces":
        text += f" ({scope})"
    if judgement.why:
        text += f": {judgement.why}"
    return shorten(text, 200)


def shorten(text: str, limit: int) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
