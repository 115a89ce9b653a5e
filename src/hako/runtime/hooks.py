"""OCI hooks: run each with the container state on stdin, its args/env, and an optional timeout."""

from __future__ import annotations

import os
import subprocess

from hako.errors import HakoError
from hako.spec.runtime import Hook


def run_hooks(stage: str, hooks: list[Hook], state_json: bytes, *, keep_going: bool = False) -> None:
    """Run a stage's hooks in order.

    ``keep_going`` is for poststart and poststop: the spec makes their failures warnings, and the
    hooks after a failing one must still run.
    """
    for i, h in enumerate(hooks):
        if not keep_going:
            run_hook(f"{stage}[{i}]", h, state_json)
            continue
        try:
            run_hook(f"{stage}[{i}]", h, state_json)
        except HakoError as e:
            from hako.runtime import log

            log.warn(str(e))


def run_hook(name: str, hook: Hook, state_json: bytes) -> None:
    args = hook.args or [hook.path]
    try:
        p = subprocess.Popen(
            args,
            executable=hook.path,
            env=dict(e.split("=", 1) for e in hook.env),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL if not os.isatty(1) else None,
            stderr=subprocess.PIPE,
            close_fds=True,
        )
    except OSError as e:
        raise HakoError(f"hook {name} ({hook.path}): {e.strerror.lower() if e.strerror else e}") from None
    try:
        # communicate() ignores EPIPE: a hook that never reads its stdin is fine.
        _, err = p.communicate(state_json, timeout=hook.timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise HakoError(f"hook {name} ({hook.path}) timed out after {hook.timeout}s") from None
    if p.returncode != 0:
        detail = err.decode(errors="replace").strip().splitlines()[-1:] if err else []
        raise HakoError(
            f"hook {name} ({hook.path}) failed with exit status {p.returncode}"
            + (f": {detail[0]}" if detail else "")
        )
