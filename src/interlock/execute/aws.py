"""aws: one AWS API call through boto3, with the target's credentials, region and endpoint.

Target fields: `aws.region`, `aws.access_key_id` and `aws.secret_access_key` (credential references,
required: the gateway's own AWS identity is never used by accident), `aws.session_token`,
`aws.endpoint_url` (a private endpoint, or a local stand-in such as moto), `timeout`,
`max_output_bytes`. Payload: `{"operation": "ec2:TerminateInstances", "params": {...}}` or the CLI
form `{"command": "aws ec2 terminate-instances --instance-ids i-1 i-2"}`, which is read into the same
call (`--flag value`, lists as several words, booleans as `--flag`/`--no-flag`, structures as JSON).
Anything we cannot read exactly is refused, never guessed. Options that choose the account, region
or endpoint (`--profile`, `--region`, `--endpoint-url`, …) belong to the target and are refused.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
from dataclasses import dataclass
from typing import Any

from interlock.execute.result import (
    Clock,
    CredentialRedactor,
    ExecutionError,
    ExecutionResult,
    OutputCapture,
    Status,
    make_result,
)
from interlock.model import Action
from interlock.policy.schema import Target

OPERATION = re.compile(r"^([a-z0-9-]+):([A-Z][A-Za-z0-9]+)$")
#: CLI service names that differ from the API's.
CLI_SERVICES = {"s3api": "s3", "configservice": "config"}
#: Global options that only shape the CLI's printing: harmless, skipped (with their value when they take one).
PRINT_OPTIONS = {
    "--output": True,
    "--query": True,
    "--color": True,
    "--no-cli-pager": False,
    "--no-paginate": False,
}
#: Global options that pick the account, region, endpoint or TLS: the target's to set.
TARGET_OPTIONS = {
    "--profile",
    "--region",
    "--endpoint-url",
    "--no-verify-ssl",
    "--ca-bundle",
    "--no-sign-request",
    "--cli-input-json",
    "--cli-input-yaml",
}


def cli_call(command: str, services: list[str], model_of: Any) -> tuple[str, str, dict[str, Any]]:
    """`aws SERVICE OPERATION --flags …` → (service, Operation, params). `model_of(service)` gives
    the botocore service model."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ExecutionError(f"aws command cannot be read: {exc}") from None
    if not words or words[0].rsplit("/", 1)[-1] != "aws":
        raise ExecutionError("aws command must start with `aws`")
    words = _drop_print_options(words[1:])
    if len(words) < 2 or words[0].startswith("-") or words[1].startswith("-"):
        raise ExecutionError("aws command needs a service and an operation: aws ec2 terminate-instances …")
    service = CLI_SERVICES.get(words[0], words[0])
    if service not in services:
        raise ExecutionError(f"aws service {words[0]!r} is not one Interlock can call (high-level `aws s3` is not)")
    model = model_of(service)
    from botocore import xform_name

    by_cli = {xform_name(name, "-"): name for name in model.operation_names}
    operation = by_cli.get(words[1])
    if operation is None:
        raise ExecutionError(f"aws {words[0]} has no operation {words[1]!r}")
    params = _read_flags(words[2:], model.operation_model(operation).input_shape)
    return service, operation, params


def _drop_print_options(words: list[str]) -> list[str]:
    kept: list[str] = []
    index = 0
    while index < len(words):
        name, has_inline, _ = words[index].partition("=")
        if name in TARGET_OPTIONS:
            raise ExecutionError(f"aws option `{name}` belongs to the target, not to the action: remove it")
        if name in PRINT_OPTIONS:
            index += 2 if PRINT_OPTIONS[name] and not has_inline else 1
            continue
        kept.append(words[index])
        index += 1
    return kept


def _scalar(value: str, shape: Any, flag: str) -> Any:
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(value)
        if kind in ("float", "double"):
            return float(value)
        if kind == "boolean":
            if value.lower() not in ("true", "false"):
                raise ValueError(value)
            return value.lower() == "true"
        if kind in ("structure", "map", "list"):
            return json.loads(value)
    except ValueError:
        raise ExecutionError(f"aws {flag}: {value[:80]!r} is not a valid {kind}") from None
    return value


def _read_flags(words: list[str], shape: Any) -> dict[str, Any]:
    from botocore import xform_name

    members = {xform_name(name, "-"): name for name in (shape.members if shape is not None else {})}
    params: dict[str, Any] = {}
    index = 0
    while index < len(words):
        word = words[index]
        if not word.startswith("--"):
            raise ExecutionError(f"aws: unexpected word {word[:80]!r}; every value must follow a --flag")
        flag, has_inline, inline = word.partition("=")
        name = flag[2:]
        negated = name.startswith("no-") and name[3:] in members and name not in members
        member = members.get(name[3:] if negated else name)
        if member is None:
            raise ExecutionError(f"aws: unknown option {flag} for this operation")
        member_shape = shape.members[member]
        if member_shape.type_name == "boolean" and not has_inline:
            params[member] = not negated
            index += 1
            continue
        if has_inline:
            values, index = [inline], index + 1
        else:
            values, index = [], index + 1
            while index < len(words) and not words[index].startswith("--"):
                values.append(words[index])
                index += 1
        if not values:
            raise ExecutionError(f"aws {flag} needs a value")
        if member_shape.type_name == "list" and member_shape.member.type_name not in (
            "structure",
            "map",
            "list",
        ):
            if len(values) == 1 and values[0].startswith("["):
                params[member] = _scalar(values[0], member_shape, flag)
            else:
                params[member] = [_scalar(v, member_shape.member, flag) for v in values]
        elif len(values) == 1:
            params[member] = _scalar(values[0], member_shape, flag)
        else:
            raise ExecutionError(f"aws {flag} takes one value (write structures as JSON), got {len(values)}")
    return params


_LOCK = threading.RLock()
_SHARED: list[Any] = []


def _botocore() -> Any:
    """One botocore session for the process: service models are loaded once, not per call (that
    costs ~200 ms). Credentials are never stored on it; each client gets its own."""
    with _LOCK:
        if not _SHARED:
            import botocore.session

            _SHARED.append(botocore.session.get_session())
        return _SHARED[0]


@dataclass(frozen=True)
class Account:
    """The target's AWS identity, resolved."""

    region: str
    endpoint_url: str | None
    access_key_id: str
    secret_access_key: str
    session_token: str | None

    def client(self, service: str, config: Any) -> Any:
        with _LOCK:  # botocore sessions are not thread-safe; the clients they make are
            return _botocore().create_client(
                service,
                region_name=self.region,
                endpoint_url=self.endpoint_url,
                aws_access_key_id=self.access_key_id,
                aws_secret_access_key=self.secret_access_key,
                aws_session_token=self.session_token,
                config=config,
            )


def account_of(target: Target, redactor: CredentialRedactor) -> Account:
    aws = target.aws
    if aws is None or aws.access_key_id is None or aws.secret_access_key is None:
        raise ExecutionError("aws target needs `aws: {access_key_id: env:…, secret_access_key: env:…, region: …}`")
    if not aws.region:
        raise ExecutionError("aws target needs `aws.region`")
    return Account(
        region=aws.region,
        endpoint_url=aws.endpoint_url,
        access_key_id=redactor.resolve(aws.access_key_id, "target aws.access_key_id"),
        secret_access_key=redactor.resolve(aws.secret_access_key, "target aws.secret_access_key"),
        session_token=redactor.resolve(aws.session_token, "target aws.session_token") if aws.session_token else None,
    )


def services() -> list[str]:
    with _LOCK:
        return list(_botocore().get_available_services())


def service_model(service: str) -> Any:
    with _LOCK:
        return _botocore().get_service_model(service)


def _call_of(action: Action) -> tuple[str, str, dict[str, Any]]:
    operation = action.payload.get("operation")
    if isinstance(operation, str):
        match = OPERATION.match(operation)
        if match is None:
            raise ExecutionError(f"aws operation {operation[:80]!r} must read service:Operation (ec2:StopInstances)")
        params = action.payload.get("params", {})
        if not isinstance(params, dict):
            raise ExecutionError("aws payload `params` must be an object")
        return match.group(1), match.group(2), params
    command = action.payload.get("command")
    if isinstance(command, str):
        return cli_call(command, services(), service_model)
    raise ExecutionError('aws payload needs `operation` + `params`, or `command` ("aws ec2 describe-instances")')


def run(
    action: Action, target: Target | None, timeout: float, redactor: CredentialRedactor, clock: Clock
) -> ExecutionResult:
    assert target is not None
    from botocore.config import Config
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        ParamValidationError,
        ReadTimeoutError,
    )

    account = account_of(target, redactor)
    service, operation, params = _call_of(action)
    if service not in services():
        raise ExecutionError(f"aws service {service!r} does not exist")
    remaining = max(1.0, timeout - clock.elapsed())
    config = Config(
        connect_timeout=remaining,
        read_timeout=remaining,
        retries={"total_max_attempts": 1},  # one attempt: a retried write is a second, unapproved write
        ignore_configured_endpoint_urls=True,  # only the target says where the account lives
    )
    client = account.client(service, config)
    if operation not in client.meta.service_model.operation_names:
        raise ExecutionError(f"aws {service} has no operation {operation}")
    from botocore import xform_name

    output = OutputCapture(target.max_output_bytes)
    try:
        response = getattr(client, xform_name(operation))(**params)
    except ClientError as exc:
        info = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return make_result(
            Status.failed,
            redactor,
            clock,
            output,
            http_status=status,
            error=f"{service}:{operation} failed: {info.get('Code', '?')}: {info.get('Message', '')}",
        )
    except ParamValidationError as exc:
        raise ExecutionError(f"{service}:{operation} parameters are not valid: {exc}") from None
    except (ReadTimeoutError, ConnectTimeoutError):
        return make_result(
            Status.timeout,
            redactor,
            clock,
            output,
            error=f"{service}:{operation}: no answer within {remaining:g}s",
        )
    except BotoCoreError as exc:
        return make_result(Status.error, redactor, clock, output, error=f"{service}:{operation}: {exc}")
    metadata = response.pop("ResponseMetadata", {})
    output.feed(json.dumps(response, indent=1, sort_keys=True, default=str).encode())
    return make_result(Status.succeeded, redactor, clock, output, http_status=metadata.get("HTTPStatusCode"))
