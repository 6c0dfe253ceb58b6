"""Run directories: one run per directory, a manifest, and config checks on resume.

A run directory holds exactly one run. :func:`prepare_run_dir` is called before anything is
computed or written:

- fresh start (``resume=false``): the directory must be empty (Hydra's own ``.hydra/`` and
  ``*.log`` files are allowed) unless ``overwrite=true``, which clears it first. It then
  writes ``config.yaml`` (the validated config) and ``manifest.json`` (config hash, code
  version, seed, start time, host).
- resume (``resume=true``): the directory and its ``config.yaml`` must exist. The stored
  config is compared with the requested one; any difference outside :data:`FREE_FIELDS`
  refuses with a diff naming each field, unless the field (or a dotted prefix of it) is listed
  in ``resume_allow``. ``config.yaml`` is never rewritten: an accepted resume appends a
  segment record to ``manifest.json`` and writes ``config.resume-<n>.yaml``, only after all
  checks passed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterable
from typing import Any

import yaml

MANIFEST = "manifest.json"
CONFIG = "config.yaml"
# Fields that never change the maths of a run: they may differ on resume.
FREE_FIELDS: tuple[str, ...] = (
    "run_dir",
    "trainer.resume",
    "trainer.overwrite",
    "trainer.resume_allow",
    "trainer.progress",
    "trainer.eval_every",
    "trainer.checkpoint.every",
    "trainer.checkpoint.keep",
    "trainer.export_hf",
)
# Entries Hydra itself puts into its output directory before the job starts.
_HYDRA_OWN = (".hydra",)


class RunDirError(ValueError):
    """A run directory cannot be used as requested (exit status 2, nothing computed)."""


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"a.b.c": leaf}`` (lists and tuples are leaves)."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: list(tree) if isinstance(tree, tuple) else tree}


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of the config without :data:`FREE_FIELDS`."""
    flat = {k: v for k, v in flatten(config).items() if not _matches(k, FREE_FIELDS)}
    return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]


def code_version() -> str:
    """``git describe --always --dirty`` of the source tree, else the package version."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("cliffjax")
        except PackageNotFoundError:
            return "unknown"


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in patterns)


def config_diff(stored: dict[str, Any], requested: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(field, stored, requested)`` for every dotted field that differs (missing = ``None``)."""
    a, b = flatten(stored), flatten(requested)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _is_empty(run_dir: str) -> bool:
    return all(n in _HYDRA_OWN or n.endswith(".log") for n in os.listdir(run_dir))


def _write_json(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, default=str)
    os.replace(tmp, path)


def _segment(config: dict[str, Any], seed: int, allowed: list[tuple[str, Any, Any]]) -> dict:
    return {
        "start_time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "config_hash": config_hash(config),
        "seed": seed,
        "host": socket.gethostname(),
        "changed": [{"field": k, "stored": a, "requested": b} for k, a, b in allowed],
    }


def prepare_run_dir(
    run_dir: str,
    config: dict[str, Any],
    *,
    resume: bool,
    overwrite: bool,
    resume_allow: Iterable[str] = (),
    write: bool = True,
) -> dict[str, Any]:
    """Check (and, if ``write``, set up) ``run_dir`` for a run of ``config``; returns the manifest.

    Args:
      run_dir: the run directory.
      config: the validated config as a plain nested dict (``experiment_to_dict``).
      resume: continue the run stored in ``run_dir``.
      overwrite: on a fresh start, delete whatever ``run_dir`` holds first.
      resume_allow: dotted fields (or prefixes) allowed to differ from the stored config.
      write: write files (process 0 of a multi-process run); checks run on every process.

    Raises:
      RunDirError: with a readable message naming the directory and each offending field.
    """
    config = json.loads(json.dumps(config, default=str))  # tuples -> lists, plain YAML
    seed = int(config.get("seed", 0))
    if resume:
        if overwrite:
            raise RunDirError("trainer.resume=true and trainer.overwrite=true exclude each other")
        stored_path = os.path.join(run_dir, CONFIG)
        if not os.path.isdir(run_dir):
            raise RunDirError(f"trainer.resume=true but run directory {run_dir} does not exist")
        if not os.path.isfile(stored_path):
            raise RunDirError(f"trainer.resume=true but {stored_path} does not exist (no run)")
        with open(stored_path, encoding="utf-8") as fh:
            stored = yaml.safe_load(fh) or {}
        allow = tuple(resume_allow)
        diff = [d for d in config_diff(stored, config) if not _matches(d[0], FREE_FIELDS)]
        refused = [d for d in diff if not _matches(d[0], allow)]
        if refused:
            lines = "\n".join(f"  {k}: stored {a!r} -> requested {b!r}" for k, a, b in refused)
            fields = ",".join(k for k, _, _ in refused)
            raise RunDirError(
                f"resume of {run_dir} refused: the requested config changes the run:\n{lines}\n"
                f"to change them deliberately add trainer.resume_allow=[{fields}]"
            )
        manifest_path = os.path.join(run_dir, MANIFEST)
        manifest: dict[str, Any] = {}
        if os.path.isfile(manifest_path):
            with open(manifest_path, encoding="utf-8") as fh:
                manifest = json.load(fh)
        segments = manifest.setdefault("resumes", [])
        if write:
            segments.append(_segment(config, seed, diff))
            with open(
                os.path.join(run_dir, f"config.resume-{len(segments)}.yaml"), "w", encoding="utf-8"
            ) as fh:
                yaml.safe_dump(config, fh, sort_keys=False)
            _write_json(manifest_path, manifest)
        return manifest

    if os.path.isdir(run_dir) and not _is_empty(run_dir):
        if not overwrite:
            raise RunDirError(
                f"run directory {run_dir} is not empty; pass trainer.resume=true to continue "
                "the run in it, trainer.overwrite=true to delete it, or another run_dir"
            )
        if write:
            for name in os.listdir(run_dir):
                if name in _HYDRA_OWN or name.endswith(".log"):
                    continue
                path = os.path.join(run_dir, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)
    manifest = _segment(config, seed, [])
    del manifest["changed"]
    manifest["resumes"] = []
    if write:
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, CONFIG), "w", encoding="utf-8") as fh:
            yaml.safe_dump(config, fh, sort_keys=False)
        _write_json(os.path.join(run_dir, MANIFEST), manifest)
    return manifest
