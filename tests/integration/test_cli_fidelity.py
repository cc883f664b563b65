"""What scripts and client libraries notice (issue 12): ``--rm`` containers racing
stop/kill/wait/rm, a report per name for verbs given several, ``images REPO``, table
output, SIGPIPE, bad ``-v``/``rename`` and Docker's wording of missing objects.

The error strings asserted here are the documented ones clients match on
(``No such container: X``, ``No such image: X``, ``No such volume: X``,
``network X not found``, ``No such object: X``), nothing else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.helpers import capsa_cli
from tests.helpers.capsa_cli import CAPSA, IMAGE, CapsaCli

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

pytestmark = pytest.mark.root


def _gone(capsa: CapsaCli, name: str) -> bool:
    return name not in capsa.run("ps", "-a", "--format", "{{.Names}}").stdout.split()


# -- --rm containers: the removal races the verb ---------------------------------------


def test_stop_of_an_rm_container_prints_its_name(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--rm", "--init", "--name", name)
    stopped = capsa.run("stop", "-t", "5", name, check=False)
    assert (stopped.returncode, stopped.stdout, stopped.stderr) == (0, f"{name}\n", "")
    capsa.wait_for(lambda: _gone(capsa, name), what=f"{name} removed")


def test_kill_and_rm_force_of_rm_containers(capsa: CapsaCli) -> None:
    killed, removed = capsa.name(), capsa.name()
    capsa.detached("--rm", "--init", "--name", killed)
    capsa.detached("--rm", "--init", "--name", removed)
    kill = capsa.run("kill", killed, check=False)
    assert (kill.returncode, kill.stdout, kill.stderr) == (0, f"{killed}\n", "")
    rm = capsa.run("rm", "-f", removed, check=False)
    assert (rm.returncode, rm.stdout, rm.stderr) == (0, f"{removed}\n", "")
    assert _gone(capsa, removed)
    capsa.wait_for(lambda: _gone(capsa, killed), what=f"{killed} removed")


def test_wait_for_rm_containers_prints_their_exit_codes(capsa: CapsaCli, tmp_path: Path) -> None:
    """The record goes with the container: the code comes from its exit all the same.
    The containers exit only once the waits have started (a file the test makes): a
    name already removed when wait looks it up is "No such container", as in Docker."""
    names = [capsa.name() for _ in range(3)]
    for code, name in enumerate(names, start=3):
        script = f"while [ ! -e /sync/go ]; do sleep 0.05; done; exit {code}"
        capsa.detached("--rm", "--name", name, "-v", f"{tmp_path}:/sync", cmd=("sh", "-c", script))
    waited = capsa.popen("wait", *names[:2])
    removed = capsa.popen("wait", "--condition", "removed", names[2])
    time.sleep(1)  # both have looked the names up (no assertion rests on this)
    (tmp_path / "go").touch()
    assert (waited.wait(30), waited.communicate()[0]) == (0, "3\n4\n")
    assert (removed.wait(30), removed.communicate()[0]) == (0, "5\n")


# -- several names: a report for each ----------------------------------------------------


def test_inspect_shows_what_it_found_then_each_error(capsa: CapsaCli) -> None:
    name, missing = capsa.name(), capsa.name()
    capsa.run("create", "--name", name, IMAGE, "true")
    any_kind = capsa.run("inspect", name, missing, check=False)
    assert any_kind.returncode == 1
    assert [d["Name"] for d in json.loads(any_kind.stdout)] == [f"/{name}"]
    assert any_kind.stderr == f"Error: No such object: {missing}\n"
    container = capsa.run("container", "inspect", "-f", "{{.Name}}", missing, name, check=False)
    assert (container.returncode, container.stdout) == (1, f"/{name}\n")
    assert container.stderr == f"Error: No such container: {missing}\n"
    image = capsa.run("image", "inspect", "-f", "{{.Id}}", IMAGE, missing, check=False)
    assert image.returncode == 1 and image.stdout.startswith("sha256:")
    assert image.stderr == f"Error: No such image: {missing}\n"
    network = capsa.run("network", "inspect", "-f", "{{.Name}}", "bridge", missing, check=False)
    assert (network.returncode, network.stdout) == (1, "bridge\n")
    assert network.stderr == f"Error: No such network: {missing}\n"
    typed = capsa.run("inspect", "--type", "network", "-f", "{{.Name}}", "bridge", check=False)
    assert (typed.returncode, typed.stdout) == (0, "bridge\n")


def test_container_verbs_report_each_name(capsa: CapsaCli) -> None:
    first, second, missing = capsa.name(), capsa.name(), capsa.name()
    for name in (first, second):
        capsa.detached("--init", "--name", name)
    error = f"No such container: {missing}"
    for verb in (("pause",), ("unpause",), ("kill", "-s", "WINCH"), ("restart", "-t", "5")):
        result = capsa.run(*verb, first, missing, second, check=False)
        assert (result.returncode, result.stdout) == (1, f"{first}\n{second}\n"), verb
        assert result.stderr.splitlines() == [f"Error response from daemon: {error}"], verb
    start = capsa.run("start", first, missing, second, check=False)
    assert (start.returncode, start.stdout) == (1, f"{first}\n{second}\n")
    assert start.stderr.splitlines()[-1] == f"Error: failed to start containers: {missing}"
    stop = capsa.run("stop", "-t", "5", first, missing, second, check=False)
    assert (stop.returncode, stop.stdout) == (1, f"{first}\n{second}\n")
    wait = capsa.run("wait", first, missing, second, check=False)
    assert wait.returncode == 1 and error in wait.stderr
    assert wait.stdout.split() == [capsa.fmt(n, "{{.State.ExitCode}}") for n in (first, second)]
    rm = capsa.run("rm", first, missing, check=False)
    assert (rm.returncode, rm.stdout) == (1, f"{first}\n") and error in rm.stderr
    forced = capsa.run("rm", "-f", missing, second, check=False)  # Docker: missing is fine
    assert (forced.returncode, forced.stdout) == (0, f"{second}\n") and error in forced.stderr


def test_volume_network_and_image_removal_report_each_name(capsa: CapsaCli) -> None:
    volume, network, tag, missing = capsa.name(), capsa.name(), capsa.name(), capsa.name()
    capsa.run("volume", "create", volume)
    gone = capsa.run("volume", "rm", missing, volume, check=False)
    assert (gone.returncode, gone.stdout) == (1, f"{volume}\n")
    assert f"No such volume: {missing}" in gone.stderr
    capsa.run("network", "create", network)
    nets = capsa.run("network", "rm", missing, network, check=False)
    assert (nets.returncode, nets.stdout) == (1, f"{network}\n")
    assert f"network {missing} not found" in nets.stderr
    forced = capsa.run("network", "rm", "-f", missing, check=False)
    assert (forced.returncode, forced.stdout, forced.stderr) == (0, "", "")
    capsa.run("tag", IMAGE, f"{tag}:v1")
    images = capsa.run("rmi", missing, f"{tag}:v1", check=False)
    assert (images.returncode, images.stdout) == (1, f"Untagged: {tag}:v1\n")
    assert images.stderr == f"Error response from daemon: No such image: {missing}\n"


# -- images REPO -------------------------------------------------------------------------


def test_images_lists_only_the_names_that_match(capsa: CapsaCli) -> None:
    base = capsa.name()  # capsa-test-<hex>: every name below shares IMAGE's id
    for ref in (f"{base}:1.0", f"{base}:latest", f"{base}/sub:latest", f"{base}x:latest"):
        capsa.run("tag", IMAGE, ref)

    def listed(*args: str) -> list[str]:
        fmt = "{{.Repository}}:{{.Tag}}"
        return sorted(capsa.run("images", "--format", fmt, *args).stdout.split())

    assert listed(base) == [f"{base}:1.0", f"{base}:latest"]
    assert listed(f"{base}:1.0") == [f"{base}:1.0"]
    assert listed(f"{base}*") == [f"{base}:1.0", f"{base}:latest", f"{base}x:latest"]
    assert listed("--filter", f"reference={base}/*") == [f"{base}/sub:latest"]
    assert listed("--filter", f"reference={base}:latest", "--filter", f"reference={base}x") == [
        f"{base}:latest",
        f"{base}x:latest",
    ]
    assert listed("nothing-by-that-name") == []
    assert len(capsa.run("images", "-q", base).stdout.split()) == 1
    for ref in (f"{base}:1.0", f"{base}:latest", f"{base}/sub:latest", f"{base}x:latest"):
        capsa.run("rmi", ref)


# -- output ------------------------------------------------------------------------------


def test_table_format_ends_with_a_newline(capsa: CapsaCli) -> None:
    out = capsa.run("images", "--format", "table {{.Repository}}\t{{.Tag}}").stdout
    assert out.startswith("REPOSITORY") and out.endswith("\n") and not out.endswith("\n\n")
    name = capsa.name()
    capsa.run("create", "--name", name, IMAGE, "true")
    assert capsa.run("ps", "-a", "--format", "table {{.Names}}").stdout == f"NAMES\n{name}\n"
    volumes = capsa.run("volume", "ls", "--format", "table {{.Name}}").stdout
    assert volumes.startswith("VOLUME NAME\n") and volumes.endswith("\n")
    assert not volumes.endswith("\n\n")


@pytest.mark.parametrize("warm", ["1", "0"])
def test_output_to_a_closed_pipe_dies_of_sigpipe(capsa: CapsaCli, warm: str) -> None:
    """``logs -f | head`` ends as Docker's CLI does (141 in a shell), warm and cold."""
    name = capsa.name()
    capsa.detached(
        "--init", "--name", name, cmd=("sh", "-c", "while :; do echo x; sleep 0.02; done")
    )
    env = {**capsa.env, "CAPSA_WARM": warm}
    logs = subprocess.Popen(
        [CAPSA, "logs", "-f", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert logs.stdout is not None and logs.stdout.readline() == b"x\n"
    logs.stdout.close()  # as `head -n 1` does
    assert logs.wait(timeout=30) == -signal.SIGPIPE
    assert logs.stderr is not None and logs.stderr.read() == b""
    read, write = os.pipe()
    os.close(read)  # nobody will read: the first write fails
    try:
        listed = subprocess.run([CAPSA, "images"], stdout=write, capture_output=False, env=env)
    finally:
        os.close(write)
    assert listed.returncode == -signal.SIGPIPE


# -- rejected input ----------------------------------------------------------------------


def test_volume_spec_with_an_empty_section_is_refused(capsa: CapsaCli) -> None:
    for spec in (":/x", "/tmp::/x", "/tmp:/x:"):
        bad = capsa.run("run", "--rm", "-v", spec, IMAGE, "true", check=False)
        assert bad.returncode == 125, spec
        assert bad.stderr == f"Error: invalid spec: {spec}: empty section between colons\n"
    assert capsa.run("ps", "-aq").stdout == ""


def test_rename_to_the_same_name_is_refused(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.run("create", "--name", name, IMAGE, "true")
    same = capsa.run("rename", name, name, check=False)
    assert same.returncode == 1
    assert "Renaming a container with the same name as its current name" in same.stderr
    assert capsa.run("rename", name, f"{name}b").returncode == 0


# -- Docker's wording of missing objects ---------------------------------------------------


def test_missing_objects_are_worded_as_docker_words_them(capsa: CapsaCli) -> None:
    missing = capsa.name()
    expected = {
        ("logs", missing): f"Error: No such container: {missing}\n",
        ("port", missing): f"Error: No such container: {missing}\n",
        ("image", "inspect", missing): f"Error: No such image: {missing}\n",
        ("volume", "inspect", missing): f"Error: No such volume: {missing}\n",
        ("history", missing): f"Error: No such image: {missing}\n",
    }
    name = capsa.name()
    capsa.run("create", "--name", name, IMAGE, "true")
    expected[("network", "connect", missing, name)] = f"Error: network {missing} not found\n"
    for args, stderr in expected.items():
        result = capsa.run(*args, check=False)
        assert (result.returncode, result.stderr) == (1, stderr), args
    never = capsa.run("run", "--pull", "never", "--rm", f"{missing}:1", "true", check=False)
    assert never.returncode == 125
    assert never.stderr == f"Error: No such image: {missing}:1\n"


def test_restart_keeps_an_rm_container(capsa: CapsaCli) -> None:
    """Docker restarts an --rm container in place; only its own end removes it."""
    name = capsa.name()
    cid = capsa.detached("--rm", "--name", name, "--init")
    first = capsa.pid(name)
    assert capsa.run("restart", "-t", "1", name).stdout == f"{name}\n"
    assert capsa.status(name) == "running"
    assert capsa.pid(name) != first
    capsa.run("stop", "-t", "1", name)
    capsa.wait_for(lambda: cid not in capsa.run("ps", "-aq", "--no-trunc").stdout, 15)
