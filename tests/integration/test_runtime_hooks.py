"""OCI hooks: order, state on stdin, where they run, timeouts."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.helpers.bundle import BundleFactory, SpecEdit, sh
from tests.helpers.runtime import Runtime

from capsa.oci.runtime_spec import Hook, Hooks, Spec

pytestmark = pytest.mark.root

IDLE = 'trap "exit 0" TERM; while :; do sleep 0.05; done'

# A hook appends "<name> <status> <id>" (from the state JSON on its stdin) to a log.
HOOK = """#!/bin/sh
state=$(cat)
status=$(echo "$state" | sed -n 's/.*"status": *"\\([a-z]*\\)".*/\\1/p')
id=$(echo "$state" | sed -n 's/.*"id": *"\\([^"]*\\)".*/\\1/p')
echo "$1 $status $id" >> "$2"
"""

# startContainer runs in the container after pivot_root: its path and log are the
# container's (the same files, seen through the rootfs).
IN_CONTAINER = ("startContainer",)


def _install(rootfs: Path) -> None:
    (rootfs / "hook.sh").write_text(HOOK)
    (rootfs / "hook.sh").chmod(0o755)


def _hook(rootfs: Path, name: str) -> Hook:
    inside = name in IN_CONTAINER
    path = "/hook.sh" if inside else str(rootfs / "hook.sh")
    log = "/hooks.log" if inside else str(rootfs / "hooks.log")
    return Hook(path=path, args=[path, name, log])


def _all_hooks(rootfs: Path) -> SpecEdit:
    def edit(spec: Spec) -> None:
        spec.hooks = Hooks(
            prestart=[_hook(rootfs, "prestart")],
            create_runtime=[_hook(rootfs, "createRuntime")],
            create_container=[_hook(rootfs, "createContainer")],
            start_container=[_hook(rootfs, "startContainer")],
            poststart=[_hook(rootfs, "poststart")],
            poststop=[_hook(rootfs, "poststop")],
        )

    return edit


def _log(b: Path) -> list[list[str]]:
    path = b / "rootfs/hooks.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def _bundle_with_hooks(bundle: BundleFactory, args: list[str]) -> Path:
    rootfs = bundle.next_path() / "rootfs"
    return bundle(args, prepare=_install, edit=_all_hooks(rootfs))


SPEC_ORDER = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
]
RUNC_11 = "runc 1.1 runs poststart hooks at create, before startContainer"


def test_hooks_run_in_order_with_state(runtime: Runtime, bundle: BundleFactory) -> None:
    b = _bundle_with_hooks(bundle, sh(IDLE))
    cid = runtime.new_id()
    runtime.run("create", "--bundle", str(b), cid)
    after_create = [e[0] for e in _log(b)]
    assert after_create[:3] == ["prestart", "createRuntime", "createContainer"]
    runtime.run("start", cid)
    runtime.run("kill", cid, "TERM")
    runtime.wait_status(cid, "stopped")
    runtime.run("delete", cid)
    log = _log(b)
    assert sorted(e[0] for e in log) == sorted(SPEC_ORDER)
    assert {e[2] for e in log} == {cid}
    statuses = {e[0]: e[1] for e in log}
    assert statuses["createRuntime"] == "creating"
    assert statuses["createContainer"] == "creating"
    assert statuses["poststop"] == "stopped"
    if runtime.is_runc:
        pytest.xfail(RUNC_11)
    assert after_create == ["prestart", "createRuntime", "createContainer"]
    assert [e[0] for e in log] == SPEC_ORDER
    assert statuses["poststart"] == "running"


def test_hooks_with_run(runtime: Runtime, bundle: BundleFactory) -> None:
    b = _bundle_with_hooks(bundle, ["true"])
    runtime.run("run", "--bundle", str(b), runtime.new_id())
    names = [e[0] for e in _log(b)]
    assert sorted(names) == sorted(SPEC_ORDER)
    if runtime.is_runc:
        pytest.xfail(RUNC_11)
    assert names == SPEC_ORDER


def test_failing_hook_fails_create(runtime: Runtime, bundle: BundleFactory) -> None:
    def edit(spec: Spec) -> None:
        spec.hooks = Hooks(create_runtime=[Hook(path="/bin/sh", args=["sh", "-c", "exit 3"])])

    b = bundle(sh(IDLE), edit=edit)
    cid = runtime.new_id()
    proc = runtime.run("create", "--bundle", str(b), cid, check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip()
    assert runtime.status(cid) is None
    assert list(Path("/sys/fs/cgroup").glob(f"*/{bundle.token}/{b.name}")) == []


def test_hook_timeout_fails_create(runtime: Runtime, bundle: BundleFactory) -> None:
    def edit(spec: Spec) -> None:
        spec.hooks = Hooks(
            create_runtime=[Hook(path="/bin/sleep", args=["sleep", "10"], timeout=1)]
        )

    b = bundle(sh(IDLE), edit=edit)
    cid = runtime.new_id()
    proc = runtime.run("create", "--bundle", str(b), cid, check=False, timeout=8)
    assert proc.returncode != 0
    assert runtime.status(cid) is None


def test_hook_gets_args_and_env(runtime: Runtime, bundle: BundleFactory, tmp_path: Path) -> None:
    out = tmp_path / "hook.out"
    script = f'echo "$0 $1 $HOOK_VAR" > {out}'

    def edit(spec: Spec) -> None:
        spec.hooks = Hooks(
            poststart=[
                Hook(path="/bin/sh", args=["sh", "-c", script, "zero", "arg1"], env=["HOOK_VAR=v1"])
            ]
        )

    runtime.run("run", "--bundle", str(bundle(["true"], edit=edit)), runtime.new_id())
    assert out.read_text().split() == ["zero", "arg1", "v1"]


def test_poststop_failure_does_not_fail_delete(runtime: Runtime, bundle: BundleFactory) -> None:
    def edit(spec: Spec) -> None:
        spec.hooks = Hooks(poststop=[Hook(path="/bin/sh", args=["sh", "-c", "exit 1"])])

    cid = runtime.new_id()
    runtime.run("create", "--bundle", str(bundle(["true"], edit=edit)), cid)
    runtime.run("start", cid)
    runtime.wait_status(cid, "stopped")
    runtime.run("delete", cid, check=False)
    assert runtime.status(cid) is None
