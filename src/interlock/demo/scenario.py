"""A scenario of the incident gallery, read from `examples/incidents/NAME/scenario.yaml`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from interlock.model import DecisionValue, Kind

WorldName = Literal["terraform", "postgres", "files", "aws"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Vote(Model):
    """A human acting on the step's approval request."""

    human: str
    verdict: Literal["approve", "deny"] = "approve"
    reason: str = ""


class Plan(Model):
    """terraform: the agent saves a plan (`terraform plan -out`) and proposes applying that file."""

    vars: dict[str, str] = Field(default_factory=dict)
    replace: tuple[str, ...] = Field(default=(), description="addresses forced to be replaced (-replace=ADDR)")
    destroy: bool = False


class Expect(Model):
    decision: DecisionValue
    rule: str | None = None
    state: str | None = Field(default=None, description="the action's state once the step is over")


class Gap(Model):
    """A judgement Interlock does not make yet: what it should answer, and why it matters."""

    should: DecisionValue
    note: str


class Step(Model):
    say: str = Field(description="what the agent tries, in words")
    kind: Kind
    environment: str
    target: str | None = None
    input: str = Field(default="", description="the action's text form; {NAME} is filled from the target")
    plan: Plan | None = None
    votes: tuple[Vote, ...] = ()
    expect: Expect
    gap: Gap | None = None
    at: datetime | None = Field(default=None, description="the guards' clock from this step on (RFC 3339)")


class Scenario(Model):
    name: str = ""
    title: str
    incident: str
    agent: str
    at: datetime | None = Field(default=None, description="when the replay happens, for the guards' clock "
                                "(change-freeze windows); without it, now")
    world: WorldName
    seed: dict[str, Any] = Field(default_factory=dict, description="what the world starts with (files, instances …)")
    steps: tuple[Step, ...]
    protected: dict[str, str] = Field(description="the target's facts after the replay, as they must be")
    directory: Path = Path()


class ScenarioError(Exception):
    """A scenario that cannot be read; the message names the file and what to fix."""


def gallery_dir() -> Path:
    """`examples/incidents` of the current directory, else of the checkout this package runs from."""
    here = Path("examples/incidents")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[3] / "examples" / "incidents"


def names(root: Path | None = None) -> list[str]:
    root = root or gallery_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "scenario.yaml").is_file())


def load(name: str, root: Path | None = None) -> Scenario:
    root = root or gallery_dir()
    path = root / name / "scenario.yaml"
    if not path.is_file():
        known = ", ".join(names(root)) or "none"
        raise ScenarioError(f"no scenario {name!r} in {root} (known: {known}); see `interlock demo --list`")
    try:
        raw: Any = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
        scenario = Scenario.model_validate({**(raw or {}), "name": name, "directory": path.parent})
    except YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ScenarioError(f"{path}: {where}: {first['msg']}") from None
    return scenario
