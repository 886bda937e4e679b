"""The Docker deployment files agree with the code: every `inventory ...` command they run exists,
the API starts only after the migration, nothing runs as root, and PostgreSQL gets the app role.

Docker cannot run in the test environment, so these read the files rather than start containers."""

from __future__ import annotations

import importlib
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from gunicorn import glogging

from inventory.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHELL_OPERATORS = {"&&", "||", ";", "|", "&"}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, arguments = line.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def argv(command: str | list[str]) -> list[str]:
    """A compose `command:` or a Dockerfile exec-form/shell-form command as words."""
    if isinstance(command, list):
        return [str(word) for word in command]
    if command.lstrip().startswith("["):
        return [str(word) for word in json.loads(command)]
    return shlex.split(command)


def inventory_invocations(words: list[str]) -> list[list[str]]:
    """Every `inventory ...` in `words`, with its arguments, also inside `sh -c "..."`."""
    found: list[list[str]] = []
    for i, word in enumerate(words):
        if " " in word:
            found += inventory_invocations(shlex.split(word))
        elif word == "inventory" or word.endswith("/inventory"):
            arguments: list[str] = []
            for following in words[i + 1 :]:
                if following in SHELL_OPERATORS:
                    break
                arguments.append(following)
            found.append(arguments)
    return found


def compose_invocations() -> dict[str, list[list[str]]]:
    by_service = {}
    for name, service in compose()["services"].items():
        for key in ("entrypoint", "command"):
            if key in service:
                by_service.setdefault(name, []).extend(inventory_invocations(argv(service[key])))
    return by_service


def dockerfile_invocations() -> list[list[str]]:
    found = []
    for keyword, arguments in dockerfile():
        if keyword in ("CMD", "ENTRYPOINT", "RUN"):
            found += inventory_invocations(argv(arguments))
    return found


def cli_accepts(arguments: list[str]) -> tuple[bool, str]:
    """Whether `inventory <arguments>` names a real command with real options: `--help` is eager,
    so click checks the command path and the option names, then prints help and stops."""
    result = CliRunner().invoke(main, [*arguments, "--help"])
    return result.exit_code == 0, result.output


def test_the_cli_check_refuses_commands_and_options_that_do_not_exist() -> None:
    assert cli_accepts(["db", "upgrade"])[0]
    assert not cli_accepts(["db", "migrate"])[0]
    assert not cli_accepts(["serve", "--listen", "0.0.0.0"])[0]
    assert inventory_invocations(["sh", "-c", "inventory db upgrade && inventory serve"]) == [
        ["db", "upgrade"],
        ["serve"],
    ]


def test_every_inventory_command_the_deployment_runs_exists() -> None:
    invocations = [
        *(args for found in compose_invocations().values() for args in found),
        *dockerfile_invocations(),
    ]
    for arguments in invocations:
        accepted, output = cli_accepts(arguments)
        assert accepted, f"`inventory {' '.join(arguments)}` is not in the CLI:\n{output}"
    by_service = compose_invocations()
    assert by_service["migrate"] == [["db", "upgrade"]]
    assert by_service["api"] and by_service["api"][0][0] == "serve"
    assert "--host" in by_service["api"][0] and "0.0.0.0" in by_service["api"][0]
    assert any(args[:1] == ["serve"] for args in dockerfile_invocations())


def test_the_api_starts_after_the_migration_and_is_health_checked() -> None:
    services = compose()["services"]
    assert services["db"]["healthcheck"]["test"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    api = services["api"]
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    image_check = [arguments for keyword, arguments in dockerfile() if keyword == "HEALTHCHECK"]
    assert "healthcheck" in api or (image_check and "/healthz" in image_check[0])
    assert image_check and "curl" not in image_check[0] and "python" in image_check[0]


@pytest.mark.parametrize(
    ("service", "role"), [("migrate", "inventory_owner"), ("api", "inventory_app")]
)
def test_each_service_connects_as_its_role(service: str, role: str) -> None:
    environment = compose()["services"][service]["environment"]
    url = environment["INVENTORY_DATABASE_URL"]
    assert url.startswith(f"postgresql+psycopg://{role}:") and url.endswith("@db:5432/inventory")


def test_the_image_does_not_run_as_root() -> None:
    users = [arguments for keyword, arguments in dockerfile() if keyword == "USER"]
    assert users, "the Dockerfile sets no USER, so the container runs as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert dockerfile()[0] == ("FROM", "python:3.11-slim")


def test_the_init_script_creates_the_roles_and_the_database() -> None:
    sql = (ROOT / "deploy" / "postgres-init.sql").read_text()
    statements = " ".join(
        line for line in sql.splitlines() if not line.lstrip().startswith("--")
    ).lower()
    for role in ("inventory_app", "inventory_owner"):
        assert re.search(rf"create (role|user) {role}\b[^;]*\blogin\b", statements), role
    assert re.search(r"create database inventory owner inventory_owner\b", statements)
    mounts = compose()["services"]["db"]["volumes"]
    assert any(
        m.startswith("./deploy/postgres-init.sql:/docker-entrypoint-initdb.d/") for m in mounts
    )


def test_gunicorn_in_the_image_logs_json_through_a_logger_that_exists() -> None:
    environment = " ".join(arguments for keyword, arguments in dockerfile() if keyword == "ENV")
    names = re.findall(r"--logger-class[ =]([\w.]+)", environment)
    assert names, "the image leaves gunicorn's own log lines in its plain-text format"
    module, _, attribute = names[0].rpartition(".")
    assert issubclass(getattr(importlib.import_module(module), attribute), glogging.Logger)


def test_gunicorn_lines_are_json_too(capsys: pytest.CaptureFixture[str]) -> None:
    from gunicorn.config import Config

    from inventory.logs import GunicornLogger

    logger = GunicornLogger(Config())
    try:
        capsys.readouterr()
        logger.info("Booting worker with pid: %s", 42)
        entry = json.loads(capsys.readouterr().err)
    finally:
        for handler in list(logger.error_log.handlers):
            logger.error_log.removeHandler(handler)
    assert entry["logger"] == "gunicorn.error" and entry["message"] == "Booting worker with pid: 42"


def test_the_image_carries_what_the_cli_reads_at_run_time() -> None:
    """Migrations and seed scenarios are read from the source tree beside the package."""
    copied = {args.split()[0] for keyword, args in dockerfile() if keyword == "COPY"}
    assert {"inventory", "migrations", "seeds"} <= copied


def test_the_image_installs_pinned_versions_that_satisfy_the_project() -> None:
    """constraints.txt pins every runtime dependency (and the build backend) to one version, and
    each pin is one pyproject.toml allows: regenerate it with `make install constraints`."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    runs = [args for keyword, args in dockerfile() if keyword == "RUN" and "pip install" in args]
    assert runs and all("constraints.txt" in args for args in runs), runs
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version.strip()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    for spec in map(Requirement, wanted):
        names = [spec.name, *(f"{spec.name}-{extra}" for extra in spec.extras)]
        for name in map(canonicalize_name, names):
            if name == canonicalize_name(spec.name) or name in pins:
                assert name in pins, f"{name} is not pinned in constraints.txt"
                assert spec.specifier.contains(pins[name]), (spec, pins[name])
