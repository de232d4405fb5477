"""The HTTP classifier: what would this request do to the service it is sent to?

By method: GET/HEAD/OPTIONS read, POST/PUT/PATCH write, DELETE destructive, anything else
unknown. The policy may override the judgement per target and method
(`ClassifyContext.http_methods`, e.g. a search API where POST only reads). A path segment that
names a destructive verb (`/users/5/delete`, `/purgeCache`) raises the risk to destructive
whatever the method: unsafe GETs exist. Header values and the query string never reach the
summary or details: they carry tokens. A request to a secret store's API that returns a secret's value
(Kubernetes Secrets, Vault, GCP Secret Manager, Azure Key Vault, AWS JSON APIs by `X-Amz-Target`)
discloses it: the registry makes it at least write + `secrets`.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from interlock.classify import aws
from interlock.classify.registry import DISCLOSES, ClassifyContext, register, unaccepted, unknown
from interlock.model import Classification, Kind, Risk

METHOD_RISK = {
    "GET": Risk.read,
    "HEAD": Risk.read,
    "OPTIONS": Risk.read,
    "POST": Risk.write,
    "PUT": Risk.write,
    "PATCH": Risk.write,
    "DELETE": Risk.destructive,
}
#: A path segment that starts with one of these verbs (then ends, or goes on with -, _ or a capital).
DESTRUCTIVE_SEGMENT = re.compile(
    r"^_?(?i:delete|destroy|drop|purge|terminate|remove|wipe|truncate|erase|kill|nuke)(?:$|[-_.]|[A-Z])"
)


#: Query parameters that name the operation an RPC-style endpoint performs.
VERB_PARAMETERS = frozenset({"action", "op", "operation", "cmd", "command", "do", "verb", "method", "task"})


#: A GraphQL mutation field whose name starts with a destructive verb (`deleteUser`, `remove_item`).
GRAPHQL_DESTRUCTIVE_FIELD = re.compile(
    r"[{\s](?i:delete|destroy|drop|purge|terminate|remove|wipe|truncate|erase|kill|nuke)\w*\s*[({]"
)


def graphql_mutation(body: Any) -> tuple[Risk, str] | None:
    """A GraphQL body (`{"query": "mutation …"}`, possibly as JSON text) that changes things."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    query = body.get("query") if isinstance(body, dict) else None
    if not isinstance(query, str) or not re.search(r"\bmutation\b", query):
        return None
    if GRAPHQL_DESTRUCTIVE_FIELD.search(query):
        return Risk.destructive, "mutation with a destructive field"
    return Risk.write, "mutation"


OVERRIDE_HEADERS = frozenset({"x-http-method-override", "x-http-method", "x-method-override"})


def method_risk(method: str, context: ClassifyContext) -> Risk:
    return context.http_methods.get(method, METHOD_RISK.get(method, Risk.unknown))


def overrides(headers: dict[Any, Any], query: str) -> list[str]:
    found = [str(v).strip().upper() for k, v in headers.items() if str(k).lower() in OVERRIDE_HEADERS]
    found += [v.strip().upper() for k, v in parse_qsl(query) if k.lower() == "_method"]
    return found


@register(Kind.http)
def classify_http(payload: dict[str, Any], context: ClassifyContext) -> Classification:
    method = payload.get("method", "GET")
    url = payload.get("url")
    if not isinstance(method, str) or not isinstance(url, str):
        return unaccepted(Kind.http, "http action needs a `method` and a `url` text")
    method = method.strip().upper()
    try:
        parts = urlsplit(url)
    except ValueError:
        return unknown("http action with a url we cannot read")
    host, path = parts.hostname, unquote(parts.path)  # properties: computed again on each use
    if parts.scheme not in ("http", "https") or not host:
        return unaccepted(Kind.http, "http action whose url is not http(s)://host/…")
    port = parts.port
    headers = payload.get("headers", {})
    if not isinstance(headers, dict):
        return unknown("http action whose `headers` is not an object")
    # Never show the query string or user:password@: either may hold a credential.
    shown = f"{parts.scheme}://{host}{f':{port}' if port else ''}{parts.path or '/'}"
    if parts.query:
        shown += "?…"
    risk = method_risk(method, context)
    why = "" if method in METHOD_RISK or method in context.http_methods else f": unknown method {method[:20]}"
    # Frameworks honour a method override (header or `_method=`): judge the method that will run.
    for override in overrides(headers, parts.query):
        if method_risk(override, context).rank > risk.rank or method_risk(override, context) is Risk.unknown:
            risk = Risk.highest([risk, method_risk(override, context)])
            why = f": overridden to {override[:20]}"
    tags: set[str] = set()
    segment = next((s for s in path.split("/") if DESTRUCTIVE_SEGMENT.match(s)), None)
    if segment is not None:
        risk = Risk.highest([risk, Risk.destructive])
        why = f": path names a destructive verb ({segment[:40]})"
    elif any(k.lower() in VERB_PARAMETERS and DESTRUCTIVE_SEGMENT.match(v) for k, v in parse_qsl(parts.query)):
        # `?action=delete`, `?op=purge`: RPC-style endpoints take the verb as a parameter (a search
        # for the word, `?q=delete`, is not one). The query may hold tokens: the summary omits it.
        risk = Risk.highest([risk, Risk.destructive])
        why = ": a query parameter names a destructive verb"
    mutation = graphql_mutation(payload.get("body"))
    if mutation is not None:
        risk = Risk.highest([risk, mutation[0]])
        why = f": GraphQL {mutation[1]}"
    lowered = [str(k).lower() for k in headers]
    if "authorization" in lowered or parts.username or parts.password:
        tags.add("secrets")
    disclosed = disclosure(method, host, port, path, lowered, headers,
                           payload.get("body"))
    details: dict[str, Any] = {
        "method": method,
        "host": host,
        "path": parts.path or "/",
        "header_names": sorted(str(k) for k in headers)[:50],
    }
    if disclosed is not None:
        tags.add("secrets")
        details[DISCLOSES] = disclosed
    return Classification(risk=risk, tags=tuple(tags), summary=f"{method[:20]} {shown[:160]}{why}", details=details)


# --- secret stores' APIs: the requests whose answer is a secret's value ------------------------------------

#: The Kubernetes API's Secrets, one or a list (a list carries every value), behind any proxy prefix.
KUBE_SECRETS = re.compile(r"/api/v1/(?:watch/)?(?:namespaces/[^/]+/)?secrets(?:/[^/]+)?/?$")
#: Vault paths that return secrets: KV v2 data, the default KV v1 mount, dynamic credentials, the caller's
#: cubbyhole, unwrapping, decryption and new tokens. Not `…/metadata/…` (versions and dates).
VAULT_SECRET_PATHS = re.compile(
    r"^/v1/(?:[^/]+/data/|secret/(?!metadata/)|cubbyhole/|[^/]+/creds/|sys/wrapping/unwrap$|[^/]+/decrypt/"
    r"|auth/token/(?:create|lookup-self$))"
)
#: Cloud instance metadata services: any process on the machine may ask them for its credentials.
METADATA_HOSTS = frozenset({"169.254.169.254", "metadata.google.internal", "metadata", "169.254.170.2",
                            "fd00:ec2::254"})
#: Their credential paths: AWS role credentials, GCP service account tokens and identity, Azure managed
#: identity tokens, ECS task role credentials.
METADATA_CREDENTIALS = re.compile(
    r"/latest/meta-data/iam/security-credentials|/computeMetadata/v1/instance/service-accounts/[^/]+/"
    r"(?:token|identity)|/metadata/identity/oauth2/token|^/v2/credentials|^/v1/credentials"
)
#: AWS JSON protocol services (`X-Amz-Target: PREFIX.Operation`) → IAM prefix, for aws.disclosure.
AMZ_TARGETS = {
    "secretsmanager": "secretsmanager",
    "amazonssm": "ssm",
    "trentservice": "kms",
    "awscognitoidentityproviderservice": "cognito-idp",
    "awscognitoidentityservice": "cognito-identity",
    "amazonec2containerregistry_v20150921": "ecr",
}


def disclosure(method: str, host: str, port: int | None, path: str, lowered: list[str],
               headers: dict[Any, Any], body: Any) -> str | None:
    """What the request's answer discloses of a secret (for `registry.DISCLOSES`), or None. Only APIs
    recognisable from the request are judged; any other GET is read (its answer cannot be known)."""
    if method == "GET" and KUBE_SECRETS.search(path):
        return "Kubernetes Secrets' data"
    if host in METADATA_HOSTS and METADATA_CREDENTIALS.search(path):
        return "the machine's cloud credentials (instance metadata)"
    if path.startswith("/v1/") and VAULT_SECRET_PATHS.match(path) and (
        port == 8200 or host.startswith("vault") or "x-vault-token" in lowered
    ):
        return "a Vault secret or token"
    if host == "secretmanager.googleapis.com" and path.endswith(":access"):
        return "a Secret Manager secret's value"
    if host.endswith(".vault.azure.net") and re.fullmatch(r"/secrets/[^/]+(?:/[^/]*)?", path.rstrip("/")):
        return "a Key Vault secret's value"
    if "x-amz-target" not in lowered:
        return None
    target = str(next(v for k, v in headers.items() if str(k).lower() == "x-amz-target"))
    prefix, _, operation = target.partition(".")
    if prefix.lower() in AMZ_TARGETS and operation:
        params = body if isinstance(body, dict) else _json_object(body)
        return aws.disclosure(f"{AMZ_TARGETS[prefix.lower()]}:{operation}", set(), params)
    return None


def _json_object(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str | bytes) else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
