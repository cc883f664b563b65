"""``run``/``create`` flags -> ContainerSpec, with docker's syntax for each value.

The values are read by ``capsa.syntax`` (its modules named below); the resource flags
by ``capsa.cli.limitflags``, which words their errors as Docker's CLI does."""

from __future__ import annotations

import os
import shlex

import click

from capsa.engine.containers.types import ContainerSpec, Healthcheck
from capsa.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from capsa.engine.containers.types import MountSpec


_HEALTH_FLAGS = (
    "health_cmd",
    "health_interval",
    "health_timeout",
    "health_retries",
    "health_start_period",
    "health_start_interval",
)


def healthcheck(kw: dict[str, Any]) -> Healthcheck | None:
    from capsa.syntax.durations import parse_duration

    given = any(kw[k] for k in _HEALTH_FLAGS)
    if kw["no_healthcheck"]:
        if given:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return Healthcheck(test=["NONE"])
    on_failure = kw.get("health_on_failure") or "none"
    if not given and on_failure == "none":
        return None

    def dur(key: str) -> float:
        return parse_duration(kw[key]) if kw[key] else 0.0

    return Healthcheck(
        test=["CMD-SHELL", kw["health_cmd"]] if kw["health_cmd"] else [],
        interval=dur("health_interval"),
        timeout=dur("health_timeout"),
        start_period=dur("health_start_period"),
        start_interval=dur("health_start_interval"),
        retries=int(kw["health_retries"] or 0),
        on_failure=on_failure,
    )


def _words(text: str, flag: str) -> list[str]:
    """A flag's value split as a shell would (``--entrypoint "sh -c"``)."""
    try:
        return shlex.split(text)
    except ValueError as e:  # an unclosed quote, a final backslash
        raise InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: {e}') from None


def build_spec(image: str, command: tuple[str, ...], kw: dict[str, Any]) -> ContainerSpec:
    from capsa.cli import limitflags
    from capsa.oci.reference import parse
    from capsa.syntax.keyvalue import PLAIN, key_values, parse_env, parse_labels
    from capsa.syntax.mounts import parse_device, parse_mount, parse_tmpfs, parse_volume
    from capsa.syntax.network import parse_extra_host, parse_publish
    from capsa.syntax.policies import apply_security_opts

    parse(image)  # a name no image can have fails now, before looking for it
    spec = ContainerSpec(
        image=image, name=kw["name"] or "", command=list(command) if command else None
    )
    if kw["entrypoint"] is not None:
        spec.entrypoint = _words(kw["entrypoint"], "--entrypoint")
    spec.env = parse_env(kw["env"], kw["env_file"])
    spec.workdir = kw["workdir"] or ""
    spec.user = kw["user"] or ""
    spec.hostname = kw["hostname"] or ""
    spec.domainname = kw["domainname"] or ""
    spec.labels = parse_labels(kw["label"], kw["label_file"])
    spec.tty, spec.stdin_open = kw["tty"], kw["interactive"]
    spec.init = kw["init"]
    spec.auto_remove = kw["rm"]
    spec.restart = kw["restart"] or "no"
    spec.healthcheck = healthcheck(kw)
    spec.read_only = kw["read_only"]
    volumes = [parse_volume(v) for v in kw["volume"]]
    spec.mounts = [
        *volumes,
        *(parse_mount(m) for m in kw["mount"]),
        *(parse_tmpfs(t) for t in kw["tmpfs"]),
    ]
    _make_bind_sources(volumes)
    spec.volumes_from = list(kw["volumes_from"])
    spec.cap_add, spec.cap_drop = list(kw["cap_add"]), list(kw["cap_drop"])
    spec.privileged = kw["privileged"]
    apply_security_opts(kw["security_opt"], spec)
    spec.devices = [parse_device(d) for d in kw["device"]]
    spec.ulimits = list(kw["ulimit"])
    spec.sysctls = key_values(kw["sysctl"], "sysctl", wording=PLAIN)
    spec.shm_size = limitflags.shm_size(kw)
    spec.stop_signal = kw["stop_signal"] or ""
    spec.stop_timeout = limitflags.stop_timeout(kw)
    spec.pid_mode, spec.ipc_mode, spec.uts_mode = kw["pid"] or "", kw["ipc"] or "", kw["uts"] or ""
    spec.cgroupns_mode = kw["cgroupns"] or ""
    spec.network_mode = kw["network"] or "bridge"
    spec.aliases = list(kw["network_alias"])
    spec.ip = kw["ip"] or ""
    spec.mac_address = kw["mac_address"] or ""
    spec.publish_all = kw["publish_all"]
    spec.ports = [p for item in kw["publish"] for p in parse_publish(item)]
    spec.dns, spec.dns_search = list(kw["dns"]), list(kw["dns_search"])
    spec.dns_options = list(kw["dns_option"])
    spec.resources = limitflags.resources(kw)
    spec.log_opts = key_values(kw["log_opt"], "log option", wording=PLAIN)
    spec.runtime = kw["runtime"] or ""
    spec.oom_score_adj = limitflags.oom_score_adj(kw)
    spec.group_add = list(kw["group_add"])
    spec.extra_hosts = [parse_extra_host(h) for h in kw["add_host"]]
    return spec


def _make_bind_sources(volumes: list[MountSpec]) -> None:
    """Docker creates a missing ``-v`` bind source directory (not ``--mount``'s)."""
    for m in volumes:
        if m.type == "bind" and not os.path.exists(m.source):
            os.makedirs(m.source, exist_ok=True)


def run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Every flag `run` and `create` share, in docker's spelling."""
    multi: dict[str, Any] = {"multiple": True, "default": ()}
    opts = [
        click.option("--name"),
        click.option("-e", "--env", **multi),
        click.option("--env-file", **multi),
        click.option("-w", "--workdir"),
        click.option("-u", "--user"),
        click.option("-h", "--hostname"),
        click.option("--domainname"),
        click.option("-l", "--label", **multi),
        click.option("--label-file", **multi),
        click.option("--entrypoint", default=None),
        click.option("-t", "--tty", is_flag=True),
        click.option("-i", "--interactive", is_flag=True),
        click.option("--init", is_flag=True),
        click.option("--rm", is_flag=True),
        click.option("--restart"),
        click.option("--health-cmd"),
        click.option("--health-interval"),
        click.option("--health-timeout"),
        click.option("--health-retries", type=int),
        click.option("--health-start-period"),
        click.option("--health-start-interval"),
        click.option("--health-on-failure"),
        click.option("--no-healthcheck", is_flag=True),
        click.option("--read-only", is_flag=True),
        click.option("--tmpfs", **multi),
        click.option("-v", "--volume", **multi),
        click.option("--mount", **multi),
        click.option("--volumes-from", **multi),
        click.option("--cap-add", **multi),
        click.option("--cap-drop", **multi),
        click.option("--privileged", is_flag=True),
        click.option("--security-opt", **multi),
        click.option("--device", **multi),
        click.option("--ulimit", **multi),
        click.option("--sysctl", **multi),
        click.option("--shm-size"),
        click.option("--stop-signal"),
        click.option("--stop-timeout", type=int),
        click.option("--pid"),
        click.option("--ipc"),
        click.option("--uts"),
        click.option("--cgroupns", help="cgroup namespace: host or private"),
        click.option("--network", "--net"),
        click.option("--add-host", **multi),
        click.option("-p", "--publish", **multi),
        click.option("-P", "--publish-all", is_flag=True),
        click.option("--ip"),
        click.option("--network-alias", "--alias", **multi),
        click.option("--mac-address"),
        click.option("--network-rate-in", help="e.g. 10mbit: into the container"),
        click.option("--network-rate-out", help="e.g. 5mbit: out of the container"),
        click.option("--dns", **multi),
        click.option("--dns-search", **multi),
        click.option("--dns-option", **multi),
        click.option("--cidfile"),
        click.option("-m", "--memory"),
        click.option("--memory-swap"),
        click.option("--memory-reservation"),
        click.option("--oom-kill-disable", is_flag=True),
        click.option("--oom-score-adj", type=int),
        click.option("--cpus"),
        click.option("-c", "--cpu-shares", type=int),
        click.option("--cpu-quota", type=int),
        click.option("--cpu-period", type=int),
        click.option("--cpuset-cpus"),
        click.option("--cpuset-mems"),
        click.option("--pids-limit", type=int),
        click.option("--blkio-weight", type=int),
        click.option("--device-read-bps", **multi),
        click.option("--device-write-bps", **multi),
        click.option("--device-read-iops", **multi),
        click.option("--device-write-iops", **multi),
        click.option("--log-opt", **multi),
        click.option("--log-driver", default="json-file"),
        click.option("--runtime"),
        click.option("--group-add", **multi),
        click.option("--platform"),
        click.option(
            "--pull", default="missing", type=click.Choice(["always", "missing", "never"])
        ),
        click.option("-q", "--quiet", is_flag=True),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn
