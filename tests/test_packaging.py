"""The distribution: one import name (``cliffjax``), configs shipped as package data, console
scripts that work from any directory after a non-editable install, declared dependencies."""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys
import sysconfig
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
MAPPED = PYPROJECT["tool"]["setuptools"]["package-dir"]  # import name -> folder


def _package_dirs() -> dict[str, pathlib.Path]:
    """Every package the repository holds, by its import name under ``cliffjax``."""
    out = {}
    for name, folder in MAPPED.items():
        base = ROOT / folder
        for d in [base, *sorted(p for p in base.rglob("*") if p.is_dir())]:
            if "__pycache__" in d.parts:
                continue
            has_code = (d / "__init__.py").exists()
            # Every config folder is a package (its YAML files are package data).
            if d == base or has_code or name == "cliffjax.conf":
                rel = d.relative_to(base).parts
                out[".".join((name, *rel))] = d
    return out


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    on_disk = set(_package_dirs())
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages"
    assert listed - on_disk == set(), "listed packages with no folder"


def _third_party_imports() -> set[str]:
    names: set[str] = set()
    for folder in MAPPED.values():
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    stdlib = set(sys.stdlib_module_names)
    return {n for n in names if n not in stdlib and n != "cliffjax"}


# import name -> distribution name, where they differ
_DIST = {
    "yaml": "pyyaml",
    "orbax": "orbax-checkpoint",
    "hydra": "hydra-core",
    "jinja2": "jinja2",
    "google": "protobuf",
    "tensorboard": "tensorboard",
    "math_verify": "math-verify",
}


def test_every_imported_package_is_declared():
    project = PYPROJECT["project"]
    declared = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        declared += extra
    dists = {
        d.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()
        for d in declared
    }
    missing = sorted(n for n in _third_party_imports() if _DIST.get(n, n).lower() not in dists)
    assert missing == [], f"imported but not declared in pyproject.toml: {missing}"


def test_no_module_imports_the_old_top_level_names():
    bad = []
    for folder in MAPPED.values():
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                mods = []
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    mods = [node.module]
                bad += [
                    f"{path}: {m}"
                    for m in mods
                    if m.split(".")[0] in ("core", "experiments", "theory_checks")
                ]
    assert bad == []


@pytest.mark.slow
def test_wheel_installs_and_console_scripts_run_outside_the_repository(tmp_path):
    """Build the wheel, install it (no deps) into a fresh venv that borrows this environment's
    third-party packages through a ``.pth`` path (the editable install's finder is not loaded
    there), and run the console scripts from a directory outside the repository."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(wheels), "."],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("cliffjax-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.check_output(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
    ).strip()
    # Third-party packages of this environment, without its editable cliffjax.
    (pathlib.Path(site) / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "--no-deps",
            "--quiet",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"

    def run(*cmd, timeout=300):
        return subprocess.run(
            cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout
        )

    where = run(
        str(py),
        "-c",
        "import cliffjax, cliffjax.conf; "
        "from cliffjax.objectives import get_objective; get_objective('mhpo'); "
        "print(cliffjax.__file__); print(cliffjax.conf.__file__)",
    )
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert line.startswith(site), f"imported from outside the wheel install: {line}"

    train = run(
        str(venv / "bin" / "cliffjax-train"),
        "model=tiny",
        "trainer=quick",
        "trainer.sft.steps=4",
        "trainer.rl.steps=2",
        "trainer.rl.prompts_per_step=4",
        "trainer.rl.group_size=2",
        "trainer.eval_every=0",
        "trainer.progress=false",
        "task.n_eval=16",
        f"run_dir={work / 'run'}",
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert (work / "run" / "summary.json").exists()
    assert "held-out greedy accuracy" in train.stdout

    theory = run(str(venv / "bin" / "cliffjax-theory"), "--quick", "--out", str(work / "th"))
    assert theory.returncode == 0, theory.stderr[-3000:]
    assert (work / "th" / "results.json").exists()
