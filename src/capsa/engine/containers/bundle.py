"""Build a container's OCI bundle before each start: rootfs mount, /etc files,
volumes and bind mounts, the user, then the config via specgen.

All or nothing: a failure unmounts what was mounted here.
"""

from __future__ import annotations

import json
import os

from capsa.cleanup import CleanupStack
from capsa.engine.containers import specgen, users
from capsa.errors import InvalidArgument, os_reason
from capsa.linux.atomicfile import write_atomic
from capsa.oci import image_spec
from capsa.oci import runtime_spec as oci
from capsa.oci.codec import to_dict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.containers.paths import ContainerPaths
    from capsa.engine.containers.types import ContainerRecord, MountSpec
    from capsa.store.content import ContentStore
    from capsa.store.snapshots import SnapshotStore

TINI_CANDIDATES = ("/usr/bin/tini-static", "/usr/bin/tini", "/usr/local/bin/tini")


def find_init() -> str:
    for path in TINI_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    raise InvalidArgument("--init needs tini (apt-get install tini)")


def write_etc_files(
    rec: ContainerRecord, paths: ContainerPaths, hostname: str, dns: dict[str, Any] | None = None
) -> None:
    """/etc/hostname, /etc/hosts and /etc/resolv.conf of the container (kept in its data dir)."""
    os.makedirs(paths.data, exist_ok=True)
    write_atomic(paths.hostname, f"{hostname}\n".encode(), 0o644, durable=False)
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    for item in rec.spec.extra_hosts:
        host, _, ip = item.partition(":")
        lines.append(f"{ip}\t{host}")
    if rec.spec.network_mode != "host":
        lines.append(f"127.0.1.1\t{hostname}")
    write_atomic(paths.hosts, ("\n".join(lines) + "\n").encode(), 0o644, durable=False)
    write_atomic(paths.resolv_conf, resolv_conf(rec, dns).encode(), 0o644, durable=False)


def resolv_conf(rec: ContainerRecord, dns: dict[str, Any] | None = None) -> str:
    """--dns flags, else the embedded DNS of a user network, else the host's resolvers
    (a 127.0.0.x stub such as systemd-resolved's is replaced by its upstreams: it is
    unreachable from another network namespace)."""
    servers, search, options = (
        list(rec.spec.dns),
        list(rec.spec.dns_search),
        list(rec.spec.dns_options),
    )
    host = _host_resolv(keep_stub=rec.spec.network_mode == "host")
    if not servers and dns:
        servers = list(dns.get("nameservers") or [])
        search = search or list(dns.get("search") or [])
    if not servers:
        servers = [
            s
            for s in host["nameserver"]
            if rec.spec.network_mode == "host" or not s.startswith("127.")
        ] or ["8.8.8.8", "8.8.4.4"]
    search = search or host["search"]
    options = options or host["options"]
    out = [f"nameserver {s}" for s in servers]
    if search:
        out.append("search " + " ".join(search))
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out) + "\n"


def _host_resolv(keep_stub: bool = False) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {"nameserver": [], "search": [], "options": []}
    # systemd-resolved's stub (127.0.0.53) is useless inside a network namespace:
    # prefer the file listing the real upstream servers when it exists
    paths = (
        ("/etc/resolv.conf",)
        if keep_stub
        else ("/run/systemd/resolve/resolv.conf", "/etc/resolv.conf")
    )
    for path in paths:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in found:
                found[parts[0]].extend(parts[1:] if parts[0] != "nameserver" else parts[1:2])
        if found["nameserver"]:
            break
    return found


def _bind(dest: str, source: str, ro: bool, extra: list[str] | None = None) -> oci.Mount:
    opts = ["rbind", "ro" if ro else "rw", *(extra or [])]
    return oci.Mount(destination=dest, type="bind", source=source, options=opts)


def user_mounts(rec: ContainerRecord, paths: ContainerPaths, volumes: object) -> list[oci.Mount]:
    out = []
    for m in rec.spec.mounts:
        out.append(_user_mount(rec, paths, m, volumes))
    for dest, source in (
        ("/etc/hostname", paths.hostname),
        ("/etc/hosts", paths.hosts),
        ("/etc/resolv.conf", paths.resolv_conf),
    ):
        if not any(os.path.normpath(m.target) == dest for m in rec.spec.mounts):
            out.append(_bind(dest, source, rec.spec.read_only, ["nosuid", "nodev", "noexec"]))
    return out


def _user_mount(
    rec: ContainerRecord, paths: ContainerPaths, m: MountSpec, volumes: object
) -> oci.Mount:
    if m.type == "tmpfs":
        opts = ["nosuid", "nodev", "noexec", *m.options]
        if m.tmpfs_size:
            opts.append(f"size={m.tmpfs_size}")
        if m.tmpfs_mode:
            opts.append(f"mode={m.tmpfs_mode:o}")
        if m.readonly:
            opts.append("ro")
        return oci.Mount(destination=m.target, type="tmpfs", source="tmpfs", options=opts)
    if m.type == "volume":
        image_root = None if m.no_copy else paths.rootfs
        source = volumes.mount_source(m.source, rec.id, image_root, m.target)  # type: ignore[attr-defined]
        return _bind(m.target, source, m.readonly)
    if not os.path.exists(m.source):
        raise InvalidArgument(
            f'invalid mount config for type "bind": bind source path does not exist: {m.source}'
        )
    extra = [m.propagation] if m.propagation else ["rprivate"]
    if not m.bind_recursive:
        return oci.Mount(
            destination=m.target,
            type="bind",
            source=m.source,
            options=["bind", "ro" if m.readonly else "rw", *extra],
        )
    return _bind(m.target, m.source, m.readonly, extra)


def rootfs_mounts(snapshots: SnapshotStore, key: str, chain_ids: list[str]) -> list[Any]:
    """The overlay of a container's existing rw layer on its image's layers."""
    from capsa.linux.mount import Mount, lowerdir_option

    rw = snapshots.rw_dir_of(key)
    lowers = snapshots.layer_dirs(chain_ids)[::-1]
    if not lowers:
        lowers = [os.path.join(rw, "empty")]
        os.makedirs(lowers[0], exist_ok=True)
    return [
        Mount(
            "overlay",
            "overlay",
            [
                lowerdir_option(lowers),
                f"upperdir={os.path.join(rw, 'upper')}",
                f"workdir={os.path.join(rw, 'work')}",
            ],
        )
    ]


def build(
    rec: ContainerRecord,
    paths: ContainerPaths,
    content: ContentStore,
    snapshots: SnapshotStore,
    volumes: object,
    cleanup: CleanupStack,
    dns: dict[str, Any] | None = None,
    namespace_paths: dict[str, str] | None = None,
) -> oci.Spec:
    """Mount the rootfs, resolve everything, write ``bundle/config.json``."""
    from capsa.linux.mount import mount_all, unmount

    paths.make()
    mounts = rootfs_mounts(snapshots, rec.rootfs_key or rec.id, rec.chain_ids)
    try:
        mount_all(mounts, paths.rootfs)
    except OSError as e:
        raise InvalidArgument(f"cannot mount the root filesystem: {os_reason(e)}") from None
    cleanup.push(unmount, paths.rootfs, True)
    image = image_spec.load_config(content.read(rec.image_id))
    hostname = rec.spec.hostname or (
        os.uname().nodename if rec.spec.network_mode == "host" else rec.id[:12]
    )
    write_etc_files(rec, paths, hostname, dns)
    user = rec.spec.user or ((image.config.user if image.config else None) or "")
    uid, gid, gids = users.resolve(paths.rootfs, user, rec.spec.group_add)
    inputs = specgen.Inputs(
        container_id=rec.id,
        rootfs=paths.rootfs,
        image=image,
        uid=uid,
        gid=gid,
        additional_gids=gids,
        hostname=hostname,
        mounts=user_mounts(rec, paths, volumes),
        init_binary=find_init() if rec.spec.init else "",
        namespace_paths=dict(namespace_paths or {}),
        home=users.home(paths.rootfs, user),
    )
    spec = specgen.generate(rec.spec, inputs)
    write_atomic(
        os.path.join(paths.bundle, "config.json"),
        json.dumps(to_dict(spec)).encode(),
        0o600,
        durable=False,
    )
    return spec
