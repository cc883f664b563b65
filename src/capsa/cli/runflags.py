"""``run``/``create`` flags -> ContainerSpec, with docker's syntax for each value.

The resource flags are read by ``capsa.cli.limitflags``."""

from __future__ import annotations

import os
import shlex

import click

from capsa.cli import limitflags
from capsa.cli.limitflags import parse_bytes
from capsa.engine.container_types import ContainerSpec, DeviceSpec, Healthcheck, MountSpec
from capsa.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def _kv(items: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {what}: {item!r}")
        out[key] = value
    return out


def _read_lines(path: str, what: str) -> list[str]:
    """The lines of an env or label file that are not blank or comments (UTF-8 only, as
    Docker reads them)."""
    try:
        with open(path, "rb") as f:
            raw = f.read().splitlines()
    except OSError as e:
        raise InvalidArgument(f"open {path}: {(e.strerror or '').lower()}") from None
    lines = []
    for number, line in enumerate(raw, 1):
        try:
            lines.append(line.decode())
        except UnicodeDecodeError:
            raise InvalidArgument(
                f"{what} {path} contains invalid utf8 bytes at line {number}"
            ) from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def env_list(env: tuple[str, ...], env_files: tuple[str, ...]) -> list[str]:
    out = []
    for path in env_files:
        for line in _read_lines(path, "env file"):
            key, eq, value = line.partition("=")
            if not key:
                raise InvalidArgument(f"invalid env file {path}: no variable name on line {line!r}")
            if not eq:
                value = os.environ.get(key, "")
                if key not in os.environ:
                    continue
            out.append(f"{key}={value}")
    for item in env:
        key, eq, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable: {item}")
        if not eq:  # `-e NAME` passes the caller's value, if any
            if key in os.environ:
                out.append(f"{key}={os.environ[key]}")
            continue
        out.append(item)
    return out


def labels(label: tuple[str, ...], label_files: tuple[str, ...]) -> dict[str, str]:
    items = [ln for path in label_files for ln in _read_lines(path, "label file")]
    return _kv((*items, *label), "label")


def volume(text: str) -> MountSpec:
    """``-v [SRC:]DST[:OPTS]``: SRC absolute = bind, a name = volume, none = anonymous."""
    if not text:
        raise InvalidArgument("invalid empty volume spec")
    parts = text.split(":")
    if len(parts) > 1 and "" in parts:  # Docker's CLI wording
        raise InvalidArgument(f"invalid spec: {text}: empty section between colons")
    if len(parts) == 1:
        return MountSpec(type="volume", target=parts[0])
    if len(parts) > 3:
        raise InvalidArgument(f"invalid volume specification: '{text}'")
    src, dst = parts[0], parts[1]
    opts = parts[2].split(",") if len(parts) == 3 else []
    if not dst.startswith("/"):
        raise InvalidArgument(
            f"invalid volume specification: '{text}': mount path must be absolute"
        )
    kind = "bind" if src.startswith(("/", ".", "~")) else "volume"
    m = MountSpec(
        type=kind,
        target=dst,
        source=os.path.abspath(os.path.expanduser(src)) if kind == "bind" else src,
    )
    for opt in opts:
        if opt in ("ro", "readonly"):
            m.readonly = True
        elif opt == "rw":
            m.readonly = False
        elif opt in ("shared", "rshared", "slave", "rslave", "private", "rprivate"):
            m.propagation = opt
        elif opt == "nocopy":
            m.no_copy = True
        elif opt in ("z", "Z", "delegated", "cached", "consistent"):
            continue
        else:
            raise InvalidArgument(f"invalid volume specification: '{text}': unknown option {opt!r}")
    if kind == "bind" and not os.path.exists(m.source):
        os.makedirs(m.source, exist_ok=True)  # docker creates a missing -v source directory
    return m


def mount(text: str) -> MountSpec:
    """``--mount type=bind,source=/a,target=/b,readonly`` (docker's CSV syntax)."""
    import csv

    try:
        fields = next(csv.reader([text]), [])
    except csv.Error as e:  # a newline in a field: Go's csv reader refuses it too
        raise InvalidArgument(f'invalid argument "{text}" for "--mount" flag: {e}') from None
    values: dict[str, str] = {}
    for f in fields:
        key, eq, value = f.partition("=")
        values[key.strip().lower()] = value if eq else "true"
    kind = values.pop("type", "volume")
    target = values.pop("target", values.pop("destination", values.pop("dst", "")))
    if not target:
        raise InvalidArgument(f'invalid argument "{text}" for "--mount" flag: target is required')
    source = values.pop("source", values.pop("src", ""))
    m = MountSpec(type=kind, target=target, source=source)
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"invalid mount type {kind!r}")
    if kind == "bind":
        if not source:
            raise InvalidArgument(
                'invalid mount config for type "bind": field Source must not be empty'
            )
        m.source = os.path.abspath(source)
    for key, value in values.items():
        if key in ("readonly", "ro"):
            m.readonly = value.lower() in ("true", "1", "")
        elif key == "bind-propagation":
            m.propagation = value
        elif key == "bind-recursive":
            m.bind_recursive = value not in ("disabled", "false")
        elif key == "volume-nocopy":
            m.no_copy = value.lower() in ("true", "1", "")
        elif key == "tmpfs-size":
            m.tmpfs_size = parse_bytes(value, "tmpfs size")
        elif key == "tmpfs-mode":
            m.tmpfs_mode = _mode(value, text)
        elif key in ("consistency", "volume-driver", "volume-label", "volume-opt"):
            continue
        else:
            raise InvalidArgument(f"unexpected key '{key}' in '{text}'")
    return m


def _mode(value: str, text: str) -> int:
    """An octal file mode (``1777``) of a tmpfs."""
    if not value or not set(value) <= set("01234567") or int(value, 8) > 0o7777:
        raise InvalidArgument(f"invalid tmpfs mode {value!r} in {text!r}")
    return int(value, 8)


def tmpfs(text: str) -> MountSpec:
    target, _, opts = text.partition(":")
    m = MountSpec(type="tmpfs", target=target)
    for opt in filter(None, opts.split(",")):
        if opt.startswith("size="):
            m.tmpfs_size = parse_bytes(opt[5:], "tmpfs size")
        elif opt.startswith("mode="):
            m.tmpfs_mode = _mode(opt[5:], text)
        elif opt == "ro":
            m.readonly = True
        elif opt in ("rw",):
            continue
        else:
            m.options.append(opt)
    return m


def device(text: str) -> DeviceSpec:
    parts = text.split(":")
    host = parts[0]
    container = parts[1] if len(parts) > 1 and parts[1].startswith("/") else host
    perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
    if set(perms) - set("rwm"):
        raise InvalidArgument(f"invalid device mode: {perms}")
    return DeviceSpec(host=host, container=container, permissions=perms)


def security(opts: tuple[str, ...], spec: ContainerSpec) -> None:
    for opt in opts:
        key, _, value = opt.partition("=" if "=" in opt else ":")
        if key == "no-new-privileges":
            spec.no_new_privileges = value.lower() in ("", "true", "1")
        elif key == "seccomp":
            if value == "unconfined":
                spec.seccomp = "unconfined"
            else:
                try:
                    with open(value) as f:
                        spec.seccomp = f.read()
                except OSError as e:
                    raise InvalidArgument(
                        f"opening seccomp profile ({value}) failed: {(e.strerror or '').lower()}"
                    ) from None
        elif key in ("apparmor", "label"):
            continue
        else:
            raise InvalidArgument(f"invalid --security-opt: {opt!r}")


_HEALTH_FLAGS = (
    "health_cmd",
    "health_interval",
    "health_timeout",
    "health_retries",
    "health_start_period",
    "health_start_interval",
)


def healthcheck(kw: dict[str, Any]) -> Healthcheck | None:
    from capsa.engine.health import parse_duration

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
    from capsa.oci.reference import parse

    parse(image)  # a name no image can have fails now, before looking for it
    spec = ContainerSpec(
        image=image, name=kw["name"] or "", command=list(command) if command else None
    )
    if kw["entrypoint"] is not None:
        spec.entrypoint = _words(kw["entrypoint"], "--entrypoint")
    spec.env = env_list(kw["env"], kw["env_file"])
    spec.workdir = kw["workdir"] or ""
    spec.user = kw["user"] or ""
    spec.hostname = kw["hostname"] or ""
    spec.domainname = kw["domainname"] or ""
    spec.labels = labels(kw["label"], kw["label_file"])
    spec.tty, spec.stdin_open = kw["tty"], kw["interactive"]
    spec.init = kw["init"]
    spec.auto_remove = kw["rm"]
    spec.restart = kw["restart"] or "no"
    spec.healthcheck = healthcheck(kw)
    spec.read_only = kw["read_only"]
    spec.mounts = [
        *(volume(v) for v in kw["volume"]),
        *(mount(m) for m in kw["mount"]),
        *(tmpfs(t) for t in kw["tmpfs"]),
    ]
    spec.volumes_from = list(kw["volumes_from"])
    spec.cap_add, spec.cap_drop = list(kw["cap_add"]), list(kw["cap_drop"])
    spec.privileged = kw["privileged"]
    security(kw["security_opt"], spec)
    spec.devices = [device(d) for d in kw["device"]]
    spec.ulimits = list(kw["ulimit"])
    spec.sysctls = _kv(kw["sysctl"], "sysctl")
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
    from capsa.engine.netwire import parse_publish

    spec.extra["ports"] = [p for item in kw["publish"] for p in parse_publish(item)]
    spec.extra_hosts = [h.replace("=", ":", 1) if "=" in h else h for h in kw["add_host"]]
    spec.dns, spec.dns_search = list(kw["dns"]), list(kw["dns_search"])
    spec.dns_options = list(kw["dns_option"])
    spec.resources = limitflags.resources(kw)
    spec.log_opts = _kv(kw["log_opt"], "log option")
    spec.runtime = kw["runtime"] or ""
    spec.oom_score_adj = limitflags.oom_score_adj(kw)
    spec.group_add = list(kw["group_add"])
    for host in spec.extra_hosts:
        if ":" not in host:
            raise InvalidArgument(
                f'invalid argument "{host}" for "--add-host" flag: bad format for add-host'
            )
    return spec


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
