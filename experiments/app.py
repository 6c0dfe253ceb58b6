"""The entry point shared by the Hydra apps: one exit status per kind of failure.

=====  ==========================================================================================
exit   meaning
=====  ==========================================================================================
0      the job finished
1      a runtime failure (a non-finite loss stopped training; an unexpected error)
2      the config or the run directory is invalid: nothing was computed; one line on stderr
       names the field (unknown key, wrong type, bad value, unknown option, refused resume)
130    SIGINT (Ctrl-C) stopped training at a step boundary; a checkpoint of that step is saved
143    SIGTERM, likewise
=====  ==========================================================================================

Hydra itself reports a config it cannot compose (unknown key, wrong type, missing group option)
with several lines and exit status 1, the same status as a crash. :func:`hydra_app` wraps
``hydra.main`` so that such errors, raised before the job function starts, print one line
``invalid config: <field>: <what is wrong>`` and exit 2. ``HYDRA_FULL_ERROR=1`` still shows the
whole traceback (then the one line), with the same status.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable

import hydra
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

CONFIG_ERROR = 2
RUNTIME_ERROR = 1


def describe_config_error(e: BaseException) -> str:
    """One line for an error Hydra or OmegaConf raised while composing a config."""
    if isinstance(e, MissingConfigException) and e.missing_cfg_file and e.options:
        group, _, name = str(e.missing_cfg_file).rpartition("/")
        return f"{group}: unknown option {name!r}; choose one of {', '.join(e.options)}"
    cause = e if isinstance(e, OmegaConfBaseException) else e.__cause__
    head = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None)
        msg = getattr(cause, "msg", None) or str(cause).strip().splitlines()[0]
        msg = " ".join(str(msg).split("full_key:")[0].split())  # drop OmegaConf's key dump
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
            msg = f"unknown key ({msg})"
        return f"{key}: {msg}" if key else f"{msg} ({head})"
    return head


def hydra_app(config_name: str) -> Callable[[Callable[[DictConfig], None]], Callable[[], None]]:
    """``hydra.main(config_path="../conf", config_name=..., version_base="1.3")`` with the exit
    statuses of this module: a config error before the job function starts exits 2 with one
    line; errors inside the job keep their own status."""

    def decorate(fn: Callable[[DictConfig], None]) -> Callable[[], None]:
        started = False

        @functools.wraps(fn)
        def job(cfg: DictConfig) -> None:
            nonlocal started
            started = True
            fn(cfg)

        hydra_main = hydra.main(config_path="../conf", config_name=config_name, version_base="1.3")(
            job
        )

        @functools.wraps(fn)
        def entry() -> None:
            user_full = "HYDRA_FULL_ERROR" in os.environ
            os.environ["HYDRA_FULL_ERROR"] = os.environ.get("HYDRA_FULL_ERROR", "1")
            try:
                hydra_main()
            except (HydraException, OmegaConfBaseException) as e:
                if started:
                    raise
                if user_full:
                    traceback.print_exc()
                print(f"invalid config: {describe_config_error(e)}", file=sys.stderr)
                sys.exit(CONFIG_ERROR)
            finally:
                if not user_full:
                    os.environ.pop("HYDRA_FULL_ERROR", None)

        return entry

    return decorate
