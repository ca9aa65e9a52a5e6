"""The container and compose files can't drift from the project: no Docker engine runs
here, so every command they run is checked against the CLI, the README and CI's install.

- The Dockerfile installs with `scripts/install-venv`, as `./dev` (CI) does, and the
  README documents that command.
- Its ENTRYPOINT + CMD, its HEALTHCHECK, and every compose service's command parse as
  `streamhouse` commands, and the start command is the one the README documents.
- Every STREAMHOUSE_* setting they set is documented in the README.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from streamhouse.cli import FLOWS, build_parser, cmd_health, cmd_run

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of each Dockerfile line, continuations joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


def instruction(name: str) -> list[str]:
    return [rest for ins, rest in dockerfile() if ins == name]


def parse(argv: list[str]):
    assert argv[0] == "streamhouse", argv
    return build_parser().parse_args(argv[1:])


def test_the_image_installs_as_ci_does_and_as_the_readme_says() -> None:
    runs = instruction("RUN")
    installs = [r for r in runs if r.startswith("scripts/install-venv")]
    assert installs == ["scripts/install-venv /opt/streamhouse ."], runs
    assert installs[0] in README
    # ./dev, which CI runs (.ci/run), installs with the same script.
    dev = (ROOT / "dev").read_text()
    assert "scripts/install-venv .venv -e '.[dev]'" in dev
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()
    # Nothing else installs Python packages behind the script's back.
    assert not [r for r in runs if "pip" in r], runs


def test_the_image_starts_the_command_the_readme_documents() -> None:
    [entrypoint] = instruction("ENTRYPOINT")
    [cmd] = instruction("CMD")
    start = json.loads(entrypoint) + json.loads(cmd)
    assert start == ["streamhouse", "run"]
    args = parse(start)
    assert args.handler is cmd_run and args.flow is None  # the flow: STREAMHOUSE_FLOW
    assert "`streamhouse run`" in README and "STREAMHOUSE_FLOW" in README
    env = dict(pair.split("=", 1) for rest in instruction("ENV") for pair in shlex.split(rest))
    assert env["STREAMHOUSE_FLOW"] in FLOWS
    assert env["STREAMHOUSE_LAKE_DIR"] in instruction("VOLUME")[0]
    assert env["STREAMHOUSE_RECOVERY_DIR"] in instruction("VOLUME")[0]
    [user] = instruction("USER")
    assert user not in ("root", "0")


def test_the_healthcheck_is_a_streamhouse_command() -> None:
    [check] = instruction("HEALTHCHECK")
    argv = json.loads(check.split(" CMD ", 1)[1])
    assert parse(argv).handler is cmd_health
    assert "streamhouse health" in README


COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
OURS = {
    n: s for n, s in COMPOSE["services"].items() if s.get("image", "").startswith("streamhouse")
}


@pytest.mark.parametrize("service", sorted(OURS))
def test_every_compose_command_parses(service: str) -> None:
    args = parse(["streamhouse", *OURS[service]["command"]])
    if args.handler is cmd_run:
        assert args.flow == service  # one service per flow, named after it


def test_compose_runs_every_flow_the_api_kafka_and_a_collector() -> None:
    flows = {n for n, s in OURS.items() if s["command"][0] == "run"}
    assert flows == set(FLOWS)
    assert "api" in OURS and "kafka" in COMPOSE["services"]
    collector = COMPOSE["services"]["otel-collector"]
    config = yaml.safe_load((ROOT / collector["volumes"][0].split(":")[0]).read_text())
    http = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    for service in OURS.values():
        endpoint = service["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
        assert endpoint == f"http://otel-collector:{http.rsplit(':', 1)[1]}"
        assert service["environment"]["STREAMHOUSE_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_every_setting_they_set_is_documented() -> None:
    names = set(re.findall(r"\bSTREAMHOUSE_[A-Z_]+", (ROOT / "Dockerfile").read_text()))
    for service in OURS.values():
        names |= {k for k in service.get("environment", {}) if k.startswith("STREAMHOUSE_")}
    undocumented = sorted(n for n in names if f"`{n}`" not in README)
    assert not undocumented, undocumented
