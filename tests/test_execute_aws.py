"""aws executor against moto in SERVER mode on 127.0.0.1: moto stands in for a cloud account (there
is no AWS here); boto3 talks real HTTP to it through the target's `endpoint_url`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from interlock.execute import Status, execute
from interlock.execute.aws import cli_call, service_model, services
from interlock.execute.result import ExecutionError
from interlock.policy.schema import Target
from tests.execute_fixtures import action, assert_no_secret, target

ACCESS_KEY_ID = "AKIDINTERLOCKTEST01"
SECRET_KEY = "sk-interlock-test-9c1f0e7a"
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def account(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Target:
    monkeypatch.setenv("INTERLOCK_TEST_AWS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("INTERLOCK_TEST_AWS_SECRET", SECRET_KEY)
    return target(
        "aws",
        aws={
            "region": REGION,
            "endpoint_url": endpoint,
            "access_key_id": "env:INTERLOCK_TEST_AWS_KEY_ID",
            "secret_access_key": "env:INTERLOCK_TEST_AWS_SECRET",
        },
        timeout=10,
    )


def ec2(endpoint: str) -> Any:
    """The test's own client (setup and checks), with its own credentials."""
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )


def launch(endpoint: str, count: int) -> list[str]:
    reply = ec2(endpoint).run_instances(ImageId="ami-12c6146b", MinCount=count, MaxCount=count)
    return [instance["InstanceId"] for instance in reply["Instances"]]


def states(endpoint: str, ids: list[str]) -> dict[str, str]:
    reply = ec2(endpoint).describe_instances(InstanceIds=ids)
    return {i["InstanceId"]: i["State"]["Name"] for r in reply["Reservations"] for i in r["Instances"]}


@pytest.mark.parametrize("form", ["operation", "cli"])
def test_terminate_one_instance_of_three(endpoint: str, account: Target, form: str) -> None:
    ids = launch(endpoint, 3)
    payload: dict[str, Any] = (
        {"operation": "ec2:TerminateInstances", "params": {"InstanceIds": [ids[0]]}}
        if form == "operation"
        else {"command": f"aws ec2 terminate-instances --instance-ids {ids[0]} --output json"}
    )
    result = execute(action("aws", payload), account)
    assert (result.status, result.http_status) == (Status.succeeded, 200), result.error
    assert ids[0] in result.output
    assert states(endpoint, ids) == {ids[0]: "terminated", ids[1]: "running", ids[2]: "running"}
    assert_no_secret(result, ACCESS_KEY_ID, SECRET_KEY)


def test_the_cli_form_reads_lists_booleans_and_json(endpoint: str, account: Target) -> None:
    ids = launch(endpoint, 2)
    command = f"aws ec2 stop-instances --instance-ids {ids[0]} {ids[1]} --no-dry-run"
    assert execute(action("aws", {"command": command}), account).status is Status.succeeded
    assert set(states(endpoint, ids).values()) == {"stopped"}
    filters = '[{"Name": "instance-state-name", "Values": ["stopped"]}]'
    result = execute(action("aws", {"command": f"aws ec2 describe-instances --filters '{filters}'"}), account)
    assert result.status is Status.succeeded and ids[0] in result.output and ids[1] in result.output


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            "aws ec2 terminate-instances --instance-ids i-1 i-2",
            ("ec2", "TerminateInstances", {"InstanceIds": ["i-1", "i-2"]}),
        ),
        (
            "aws ec2 terminate-instances --instance-ids=i-1 --dry-run",
            ("ec2", "TerminateInstances", {"InstanceIds": ["i-1"], "DryRun": True}),
        ),
        (
            "aws --output text ec2 describe-instances --max-results 5",
            ("ec2", "DescribeInstances", {"MaxResults": 5}),
        ),
        ("aws s3api delete-object --bucket b --key k", ("s3", "DeleteObject", {"Bucket": "b", "Key": "k"})),
        (
            "aws ec2 describe-instances --instance-ids '[\"i-1\"]'",
            ("ec2", "DescribeInstances", {"InstanceIds": ["i-1"]}),
        ),
        ("aws ec2 terminate-instances --bogus 1", "unknown option --bogus"),
        ("aws ec2 terminate-instances i-1", "every value must follow a --flag"),
        ("aws ec2 describe-instances --max-results five", "not a valid integer"),
        ("aws ec2 explode-everything", "has no operation 'explode-everything'"),
        ("aws s3 rm s3://bucket --recursive", "has no operation 'rm'"),
        ("aws nosuchservice do-it", "not one Interlock can call"),
        ("aws --region us-east-1 ec2 describe-instances", "`--region` belongs to the target"),
        ("aws ec2 describe-instances --endpoint-url http://evil", "`--endpoint-url` belongs to the target"),
        ("aws --profile admin ec2 describe-instances", "`--profile` belongs to the target"),
        ("gcloud compute instances list", "must start with `aws`"),
        ("aws ec2", "needs a service and an operation"),
    ],
)
def test_cli_commands_are_read_exactly_or_refused(
    command: str, expected: tuple[str, str, dict[str, Any]] | str
) -> None:
    if isinstance(expected, str):
        with pytest.raises(ExecutionError, match=expected.replace("-", "\\-").replace("`", ".")):
            cli_call(command, services(), service_model)
    else:
        assert cli_call(command, services(), service_model) == expected


def test_an_error_that_echoes_a_credential_is_redacted(account: Target) -> None:
    # The instance id is the access key id: the API's error message echoes it back.
    payload = {"operation": "ec2:TerminateInstances", "params": {"InstanceIds": [ACCESS_KEY_ID]}}
    result = execute(action("aws", payload), account)
    assert result.status is Status.failed and result.http_status == 400
    assert result.error is not None and "InvalidInstanceID" in result.error and "[REDACTED]" in result.error
    assert_no_secret(result, ACCESS_KEY_ID, SECRET_KEY)


@pytest.mark.parametrize(
    ("payload", "aws_fields", "message"),
    [
        (
            {"operation": "ec2:DescribeInstances"},
            {"secret_access_key": "env:INTERLOCK_TEST_UNSET_AWS"},
            "'env:INTERLOCK_TEST_UNSET_AWS'",
        ),
        ({"operation": "ec2:DescribeInstances"}, {"access_key_id": None}, "needs `aws: {access_key_id"),
        ({"operation": "ec2:DescribeInstances"}, {"region": None}, "needs `aws.region`"),
        ({"operation": "ec2:NoSuchThing"}, {}, "ec2 has no operation NoSuchThing"),
        ({"operation": "nosuch:DoIt"}, {}, "service 'nosuch' does not exist"),
        ({"operation": "terminate everything"}, {}, "must read service:Operation"),
        (
            {"operation": "ec2:TerminateInstances", "params": {"InstanceIds": "i-1"}},
            {},
            "parameters are not valid",
        ),
        ({"params": {}}, {}, "needs `operation`"),
    ],
)
def test_cannot_call_becomes_a_clear_error(
    account: Target, payload: dict[str, Any], aws_fields: dict[str, Any], message: str
) -> None:
    assert account.aws is not None
    chosen = account.model_copy(update={"aws": account.aws.model_copy(update=aws_fields)})
    result = execute(action("aws", payload), chosen)
    assert result.status is Status.error
    assert result.error is not None and message in result.error
    assert_no_secret(result, ACCESS_KEY_ID, SECRET_KEY)


def test_credentials_the_account_rejects_are_never_echoed(account: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.settings

    # From now on moto checks every request's credentials, like a real account: ours are unknown to it.
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    result = execute(action("aws", {"command": "aws ec2 describe-instances"}), account)
    assert result.status is Status.failed and result.http_status in (401, 403)
    assert result.error is not None and "ec2:DescribeInstances failed: AuthFailure" in result.error
    assert_no_secret(result, ACCESS_KEY_ID, SECRET_KEY)
