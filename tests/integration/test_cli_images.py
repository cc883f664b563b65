"""The image commands end to end: the real ``capsa`` CLI against a loopback registry.

Every test drives ``.venv/bin/capsa`` in a subprocess with private CAPSA_ROOT/RUNROOT, a
private HOME and auth file (the real ~/.docker is never touched) and CAPSA_CONFIG naming a
``capsa.toml`` whose docker.io mirrors are a dead port and then the module's registry.
Destructive tests (prune, corrupt blobs, killed pulls) get roots of their own (``fresh``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import requires, unique_name
from tests.helpers.capsa_cli import CAPSA, CapsaCli
from tests.helpers.images import ImageLayouts, add_layer, layout_manifest, umoci
from tests.helpers.registry import LocalRegistry, free_port, push_layout, skopeo

pytestmark = pytest.mark.root

BIG_LAYER_BYTES = 24 * 1024 * 1024


class ImageCli(CapsaCli):
    """CapsaCli with a private HOME, auth file and config file."""

    def __init__(self, base: Path, config: Path) -> None:
        super().__init__(base / "root", base / "r")
        self.base = base
        self.auth_file = base / "home" / ".docker" / "config.json"
        (base / "home").mkdir(parents=True, exist_ok=True)
        self.env.update(
            HOME=str(base / "home"),
            CAPSA_CONFIG=str(config),
            CAPSA_AUTH_FILE=str(self.auth_file),
        )

    def fails(self, *args: str, match: str, input: str | None = None) -> str:
        """``capsa *args`` must exit 1 with one ``Error:`` line (the last) matching ``match``."""
        proc = self.run(*args, check=False, input=input)
        assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        errors = [ln for ln in lines if ln.startswith("Error")]
        assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
        assert re.search(match, errors[0], re.IGNORECASE), errors[0]
        return errors[0]

    def image_ids(self) -> set[str]:
        return set(self.run("images", "-q", "--no-trunc").stdout.split())

    def names(self) -> set[str]:
        out = self.run("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
        return set(out.split())

    def inspect_image(self, name: str) -> dict[str, Any]:
        (doc,) = self.json("image", "inspect", name)
        assert isinstance(doc, dict)
        return doc

    def image_id(self, name: str) -> str:
        return str(self.inspect_image(name)["Id"])

    def blobs(self) -> set[str]:
        d = self.root / "content" / "blobs" / "sha256"
        return set(os.listdir(d)) if d.is_dir() else set()

    def remove_all_images(self) -> None:
        ids = self.run("images", "-aq", "--no-trunc", check=False).stdout.split()
        if ids:
            self.run("rmi", "-f", *ids, check=False)


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub(registry: LocalRegistry, image_layouts: ImageLayouts) -> LocalRegistry:
    """The module's registry holding the test images under their names."""
    requires("docker-registry", "skopeo", "umoci")
    push_layout(registry, image_layouts.busybox(), "test/busybox:latest")
    push_layout(registry, image_layouts.busybox(), "test/busybox:v2s2", fmt="v2s2")
    push_layout(registry, image_layouts.layered(), "test/layered:latest")
    push_layout(registry, image_layouts.multiplatform(), "test/multi:latest")
    push_layout(registry, image_layouts.busybox(), "library/busybox:latest")
    return registry


@pytest.fixture(scope="module")
def base(hub: LocalRegistry) -> Iterator[Path]:
    """A short directory under /tmp (unix socket paths) with capsa.toml whose docker.io
    mirrors are a dead port, then the hub (the first fails over to the second)."""
    path = Path(tempfile.mkdtemp(prefix="ci", dir="/tmp"))
    dead = f"http://127.0.0.1:{free_port()}"
    (path / "capsa.toml").write_text(
        f'[registries."docker.io"]\nmirrors = ["{dead}", "{hub.url}"]\n'
    )
    yield path
    mounts = Path("/proc/self/mountinfo").read_text()
    if f" {path}/" not in mounts:  # never rmtree through a leaked mount
        shutil.rmtree(path, ignore_errors=True)


def _close(cli: ImageCli) -> list[str]:
    problems = cli.cleanup()
    cli.remove_all_images()
    problems += [f"mount {m}" for m in cli.mounts()]
    return problems


@pytest.fixture(scope="module")
def cli_module(base: Path) -> Iterator[ImageCli]:
    cli = ImageCli(base / "main", base / "capsa.toml")
    yield cli
    problems = _close(cli)
    assert not problems, "module cleanup left:\n  " + "\n  ".join(problems)


@pytest.fixture
def cli(cli_module: ImageCli) -> Iterator[ImageCli]:
    yield cli_module
    problems = cli_module.cleanup()
    if problems:
        pytest.fail("capsa left behind:\n  " + "\n  ".join(problems))


@pytest.fixture
def fresh(base: Path) -> Iterator[Callable[[], ImageCli]]:
    """``fresh()``: a capsa with empty private roots, removed after the test."""
    made: list[ImageCli] = []

    def make() -> ImageCli:
        cli = ImageCli(base / unique_name("f-"), base / "capsa.toml")
        made.append(cli)
        return cli

    yield make
    problems = []
    for cli in made:
        problems += _close(cli)
        if not cli.mounts():
            shutil.rmtree(cli.base, ignore_errors=True)
    if problems:
        pytest.fail("capsa left behind:\n  " + "\n  ".join(problems))


@pytest.fixture(scope="module")
def big_layout(image_layouts: ImageLayouts, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """busybox plus a layer holding /big.bin: 24 MiB of random bytes (gzip cannot shrink it)."""
    work = tmp_path_factory.mktemp("capsa-test-big")
    layout = work / "layout"
    shutil.copytree(image_layouts.busybox(), layout, symlinks=True)
    data = work / "big.bin"
    data.write_bytes(os.urandom(BIG_LAYER_BYTES))
    layer = work / "big.tar"
    with tarfile.open(layer, "w") as tar:
        tar.add(data, arcname="big.bin")
    add_layer(layout, layer, "add /big.bin")
    data.unlink()
    layer.unlink()
    return layout


def _top_layer_digest(layout: Path) -> str:
    desc = layout_manifest(layout)
    manifest_hex = str(desc["digest"]).removeprefix("sha256:")
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_hex).read_text())
    return str(manifest["layers"][-1]["digest"])


# -- tree comparison ------------------------------------------------------------------

Entry = tuple[str, int, int, int, int, str]  # kind, mode, uid, gid, size, link target


def _tree_of_dir(root: Path) -> dict[str, Entry]:
    out: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = str(path.relative_to(root))
            kind = _kind(st.st_mode)
            link = os.readlink(path) if kind == "l" else ""
            size = st.st_size if kind == "f" else 0
            out[rel] = (kind, st.st_mode & 0o7777, st.st_uid, st.st_gid, size, link)
    return out


def _kind(mode: int) -> str:
    import stat

    for test, kind in (
        (stat.S_ISREG, "f"),
        (stat.S_ISDIR, "d"),
        (stat.S_ISLNK, "l"),
        (stat.S_ISCHR, "c"),
        (stat.S_ISBLK, "b"),
        (stat.S_ISFIFO, "p"),
    ):
        if test(mode):
            return kind
    return "?"


def _tree_of_tar(path: Path) -> dict[str, Entry]:
    out: dict[str, Entry] = {}
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    by_name = {m.name.strip("/").removeprefix("./"): m for m in members}
    for rel, m in by_name.items():
        if not rel or rel == ".":
            continue
        if m.islnk():  # a hard link is a regular file with the target's size
            target = by_name[m.linkname.strip("/").removeprefix("./")]
            out[rel] = ("f", m.mode & 0o7777, m.uid, m.gid, target.size, "")
            continue
        kind = {
            tarfile.REGTYPE: "f",
            tarfile.AREGTYPE: "f",
            tarfile.DIRTYPE: "d",
            tarfile.SYMTYPE: "l",
            tarfile.CHRTYPE: "c",
            tarfile.BLKTYPE: "b",
            tarfile.FIFOTYPE: "p",
        }.get(m.type, "?")
        link = m.linkname if kind == "l" else ""
        out[rel] = (kind, m.mode & 0o7777, m.uid, m.gid, m.size if kind == "f" else 0, link)
    return out


def _umoci_tree(layout: Path, work: Path) -> dict[str, Entry]:
    bundle = work / "umoci-bundle"
    umoci("unpack", "--image", f"{layout}:latest", str(bundle))
    try:
        return _tree_of_dir(bundle / "rootfs")
    finally:
        shutil.rmtree(bundle, ignore_errors=True)


def _exported_tree(cli: ImageCli, image: str, work: Path) -> dict[str, Entry]:
    name = unique_name()
    cli.run("create", "--name", name, image)
    out = work / f"{name}.tar"
    try:
        cli.run("export", "-o", str(out), name)
    finally:
        cli.run("rm", "-f", name)
    tree = _tree_of_tar(out)
    out.unlink()
    return tree


def _assert_same_tree(capsa: dict[str, Entry], reference: dict[str, Entry]) -> None:
    missing = sorted(set(reference) - set(capsa))
    extra = sorted(set(capsa) - set(reference))
    differ = {p: (capsa[p], reference[p]) for p in reference if p in capsa}
    differ = {p: v for p, v in differ.items() if v[0] != v[1] and not _same_dir(*v)}
    assert not missing and not extra and not differ, (
        f"missing: {missing[:20]}\nextra: {extra[:20]}\n"
        f"differ (capsa, umoci): {list(differ.items())[:20]}"
    )


def _same_dir(a: Entry, b: Entry) -> bool:
    return a[0] == b[0] == "d" and a[1:4] == b[1:4]


# -- pull, list, inspect ----------------------------------------------------------------


@pytest.mark.parametrize("tag", ["latest", "v2s2"])
def test_pull_then_list_and_inspect(cli: ImageCli, hub: LocalRegistry, tag: str) -> None:
    ref = f"{hub.host}/test/busybox:{tag}"
    proc = cli.run("pull", ref, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == ref
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}")
    manifest = json.loads(raw)

    rows = [json.loads(ln) for ln in cli.run("images", "--format", "json").stdout.splitlines()]
    (row,) = [r for r in rows if r["Repository"] == f"{hub.host}/test/busybox" and r["Tag"] == tag]
    assert re.fullmatch(r"[\d.]+[kMG]?B", row["Size"]) and row["Size"] != "0B"

    doc = cli.inspect_image(ref)
    assert doc["Id"] == manifest["config"]["digest"]
    assert ref in doc["RepoTags"]
    digest = skopeo("inspect", "--tls-verify=false", "--format", "{{.Digest}}", f"docker://{ref}")
    assert f"{hub.host}/test/busybox@{digest.decode().strip()}" in doc["RepoDigests"]
    assert doc["Config"]["Cmd"] == ["/bin/sh"]
    assert doc["Architecture"] == "amd64" and doc["Os"] == "linux"
    config = json.loads(
        skopeo("inspect", "--raw", "--config", "--tls-verify=false", f"docker://{ref}")
    )
    assert doc["RootFS"] == {"Type": "layers", "Layers": config["rootfs"]["diff_ids"]}
    assert isinstance(doc["Size"], int) and doc["Size"] > 1_000_000

    assert doc["Id"].removeprefix("sha256:")[:12] in cli.run("images", "-q").stdout.split()
    digests = cli.run("images", "--digests").stdout
    assert "DIGEST" in digests.splitlines()[0]
    assert any(
        row.startswith(f"{hub.host}/test/busybox ") and "sha256:" in row
        for row in digests.splitlines()
    )
    names = cli.names()
    assert f"{hub.host}/test/busybox:{tag}" in names
    dangling = cli.run("images", "--filter", "dangling=true", "-q", "--no-trunc").stdout.split()
    assert doc["Id"] not in dangling

    history = cli.run("history", ref).stdout.splitlines()
    assert history[0].split()[:1] == ["IMAGE"]
    assert history[1].startswith(doc["Id"].removeprefix("sha256:")[:12])
    assert len(history) - 1 == len(config["history"])


def test_images_digests_shows_each_tags_digest(cli: ImageCli, hub: LocalRegistry) -> None:
    """One image pulled by two tags with different manifests (OCI and schema 2): like
    ``docker images --digests``, every repo digest shows up against its repository."""
    for tag in ("latest", "v2s2"):
        cli.run("pull", f"{hub.host}/test/busybox:{tag}")
    doc = cli.inspect_image(f"{hub.host}/test/busybox:latest")
    assert len(doc["RepoDigests"]) == 2
    shown = cli.run("images", "--digests", "--format", "{{.Tag}} {{.Digest}}").stdout
    for item in doc["RepoDigests"]:
        assert item.partition("@")[2] in shown, (item, shown)


def test_pull_quiet_prints_only_the_name(cli: ImageCli, hub: LocalRegistry) -> None:
    ref = f"{hub.host}/test/busybox:latest"
    proc = cli.run("pull", "-q", ref, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"{ref}\n", "")


def test_push_quiet(cli: ImageCli, hub: LocalRegistry) -> None:
    source = f"{hub.host}/test/busybox:latest"
    target = f"{hub.host}/other/{unique_name()}:quiet"
    cli.run("pull", source)
    cli.run("tag", source, target)
    proc = cli.run("push", "-q", target, check=False)
    cli.run("rmi", target)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "sha256:" in proc.stdout, proc.stdout


def test_images_filters_and_formats(cli: ImageCli, hub: LocalRegistry) -> None:
    ref = f"{hub.host}/test/multi:latest"
    cli.run("pull", ref)
    first = cli.image_id(ref)
    cli.run("pull", "--platform", "linux/arm64", ref)  # the tag moves: amd64 dangles
    dangling = cli.run("images", "--filter", "dangling=true", "-q", "--no-trunc").stdout.split()
    assert first in dangling and cli.image_id(ref) not in dangling
    table = cli.run("images", "--filter", "dangling=true").stdout
    assert "<none>" in table
    refs = cli.run("images", "--filter", f"reference={hub.host}/test/multi", "-q").stdout.split()
    assert refs == [cli.image_id(ref).removeprefix("sha256:")[:12]]
    cli.fails("images", "--filter", "bogus=1", match="invalid filter")
    cli.run("rmi", first, ref)


def test_pull_matches_umoci_unpack(
    cli: ImageCli, hub: LocalRegistry, image_layouts: ImageLayouts, tmp_path: Path
) -> None:
    for tag in ("latest", "v2s2"):
        ref = f"{hub.host}/test/busybox:{tag}"
        cli.run("pull", ref)
        _assert_same_tree(
            _exported_tree(cli, ref, tmp_path), _umoci_tree(image_layouts.busybox(), tmp_path)
        )


def test_layered_image_whiteout_and_opaque(
    cli: ImageCli, hub: LocalRegistry, image_layouts: ImageLayouts, tmp_path: Path
) -> None:
    ref = f"{hub.host}/test/layered:latest"
    cli.run("pull", ref)
    assert len(cli.inspect_image(ref)["RootFS"]["Layers"]) == 3
    out = cli.run(
        "run", "--rm", ref, "sh", "-c", "ls -A /data; echo --; ls -A /data/dir; cat /etc/motd"
    ).stdout
    listing, dir_listing = out.split("--\n")
    assert sorted(listing.split()) == ["dir", "hard", "keep.txt", "link", "suid"]
    assert dir_listing.split() == ["c.txt", "layer", "three"]
    exported = _exported_tree(cli, ref, tmp_path)
    assert exported["data/suid"][1:4] == (0o4755, 1000, 1000)
    _assert_same_tree(exported, _umoci_tree(image_layouts.layered(), tmp_path))


def test_multiplatform_index(cli: ImageCli, hub: LocalRegistry) -> None:
    ref = f"{hub.host}/test/multi:latest"
    cli.run("pull", ref)
    doc = cli.inspect_image(ref)
    assert (doc["Os"], doc["Architecture"]) == ("linux", "amd64")
    cli.run("pull", "--platform", "linux/arm64", ref)
    arm = cli.inspect_image(ref)
    assert arm["Architecture"] == "arm64" and arm["Id"] != doc["Id"]
    assert arm["Config"]["Labels"] == {"capsa.test.arch": "arm64"}
    cli.run("rmi", ref, doc["Id"])


def test_bad_reference_is_one_line(cli: ImageCli) -> None:
    cli.fails("pull", "UPPER/Case", match=r"invalid reference format")
    cli.fails("pull", "bad::ref", match=r"invalid reference format")


def test_pull_unknown_image_is_one_line(cli: ImageCli, hub: LocalRegistry) -> None:
    cli.fails("pull", f"{hub.host}/test/nothing:latest", match=r"not found|unknown|manifest")
    assert not any("nothing" in n for n in cli.names())


# -- registries: auth, mirrors, push ------------------------------------------------------


def test_login_pull_logout(
    cli: ImageCli, auth_registry: LocalRegistry, image_layouts: ImageLayouts
) -> None:
    push_layout(auth_registry, image_layouts.busybox(), "private/busybox:latest")
    ref = f"{auth_registry.host}/private/busybox:latest"
    cli.fails("pull", ref, match=r"auth|denied|unauthorized|credentials")
    assert ref not in cli.names()
    cli.fails(
        "login", "-u", "capsa", "--password-stdin", auth_registry.host,
        input="wrong\n", match=r"denied|unauthorized|auth|password|incorrect",
    )  # fmt: skip
    assert not cli.auth_file.exists() or auth_registry.host not in cli.auth_file.read_text()
    proc = cli.run("login", "-u", "capsa", "--password-stdin", auth_registry.host, input="secret\n")
    assert "Login Succeeded" in proc.stdout
    auths = json.loads(cli.auth_file.read_text())["auths"]
    assert auth_registry.host in auths and auths[auth_registry.host]["auth"]
    assert not (Path.home() / ".docker" / "config.json").exists() or (
        auth_registry.host not in (Path.home() / ".docker" / "config.json").read_text()
    )
    cli.run("pull", ref)
    assert ref in cli.names()
    assert "Removing login credentials" in cli.run("logout", auth_registry.host).stdout
    assert auth_registry.host not in json.loads(cli.auth_file.read_text()).get("auths", {})
    cli.fails("pull", ref, match=r"auth|denied|unauthorized|credentials")
    cli.run("rmi", ref)


def test_mirror_serves_docker_hub_name(cli: ImageCli, hub: LocalRegistry) -> None:
    proc = cli.run("pull", "busybox", timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "docker.io/library/busybox:latest"
    assert "busybox:latest" in cli.names()
    doc = cli.inspect_image("busybox")
    assert "busybox:latest" in doc["RepoTags"]
    assert any(d.startswith("busybox@sha256:") for d in doc["RepoDigests"])
    assert cli.run("run", "--rm", "busybox", "echo", "mirrored").stdout.strip() == "mirrored"
    cli.run("rmi", "busybox")


def test_push_pull_back(fresh: Callable[[], ImageCli], hub: LocalRegistry) -> None:
    cli = fresh()
    source = f"{hub.host}/test/busybox:latest"
    target = f"{hub.host}/other/{unique_name()}:v1"
    cli.run("pull", source)
    image_id = cli.image_id(source)
    cli.run("tag", source, target)
    proc = cli.run("push", target, timeout=120)
    assert re.search(r"v1: digest: sha256:[0-9a-f]{64}", proc.stdout), proc.stdout
    pushed = proc.stdout.split("digest: ")[-1].split()[0]
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{target}"))
    assert info["Digest"] == pushed
    cli.run("rmi", target, source)
    assert image_id not in cli.image_ids()
    cli.run("pull", target)
    assert cli.image_id(target) == image_id
    cli.run("rmi", target)


# -- archives and import ------------------------------------------------------------------


def test_save_rmi_load_docker_archive(
    fresh: Callable[[], ImageCli], hub: LocalRegistry, tmp_path: Path
) -> None:
    cli = fresh()
    ref = f"{hub.host}/test/busybox:latest"
    cli.run("pull", ref)
    image_id = cli.image_id(ref)
    archive = tmp_path / "f.tar"
    cli.run("save", "-o", str(archive), ref)
    info = json.loads(skopeo("inspect", f"docker-archive:{archive}"))
    assert info["Architecture"] == "amd64" and len(info["Layers"]) == 1
    copied = tmp_path / "copied"
    skopeo("copy", "--quiet", f"docker-archive:{archive}", f"oci:{copied}:latest")
    assert (copied / "index.json").is_file()
    cli.run("rmi", ref)
    assert image_id not in cli.image_ids()
    out = cli.run("load", "-i", str(archive)).stdout
    assert f"Loaded image: {ref}" in out
    assert cli.image_id(ref) == image_id
    assert cli.run("run", "--rm", ref, "echo", "loaded").stdout.strip() == "loaded"
    cli.run("rmi", ref)


def test_save_load_through_a_pipe(
    cli: ImageCli, fresh: Callable[[], ImageCli], hub: LocalRegistry
) -> None:
    """``capsa save IMG | capsa load`` in a shell, from one store into an empty one."""
    ref = f"{hub.host}/test/layered:latest"
    cli.run("pull", ref)
    image_id = cli.image_id(ref)
    other = fresh()
    pipe = f"'{CAPSA}' --root '{cli.root}' save {ref} | '{CAPSA}' --root '{other.root}' load"
    proc = subprocess.run(["sh", "-c", pipe], env=other.env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"Loaded image: {ref}" in proc.stdout
    assert other.image_id(ref) == image_id
    assert other.run("run", "--rm", ref, "cat", "/data/dir/c.txt").stdout == "c\n"


def test_save_load_oci_archive(
    fresh: Callable[[], ImageCli], hub: LocalRegistry, tmp_path: Path
) -> None:
    cli = fresh()
    ref = f"{hub.host}/test/busybox:latest"
    cli.run("pull", ref)
    image_id = cli.image_id(ref)
    archive = tmp_path / "o.tar"
    cli.run("save", "--format", "oci-archive", "-o", str(archive), ref)
    info = json.loads(skopeo("inspect", f"oci-archive:{archive}"))
    assert info["Os"] == "linux" and len(info["Layers"]) == 1
    cli.run("rmi", ref)
    cli.run("load", "-i", str(archive))
    assert cli.image_id(ref) == image_id
    cli.run("rmi", ref)


def test_import_rootfs_from_stdin(cli: ImageCli, busybox_rootfs: Path) -> None:
    name = f"test/{unique_name()}"
    script = f"tar -C '{busybox_rootfs}' -c . | '{CAPSA}' import -c 'CMD [\"/bin/sh\"]' - {name}"
    proc = subprocess.run(["sh", "-c", script], env=cli.env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", proc.stdout.strip())
    assert cli.inspect_image(name)["Config"]["Cmd"] == ["/bin/sh"]
    assert cli.run("run", "--rm", name, "echo", "ok").stdout.strip() == "ok"
    cli.run("rmi", name)


def test_image_size_counts_bytes_not_blocks(cli: ImageCli, tmp_path: Path) -> None:
    """Docker's image size is what the files hold (10 + 1000 bytes here), not the disk
    blocks they take (4 KiB each at least)."""
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "ten").write_bytes(b"0123456789")
    (tree / "thousand").write_bytes(b"x" * 1000)
    os.link(tree / "thousand", tree / "etc" / "same")  # a hard link counts once
    archive = tmp_path / "tree.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tree, arcname=".")
    name = f"test/{unique_name()}"
    cli.run("import", str(archive), name)
    assert cli.inspect_image(name)["Size"] == 1010
    shown = cli.run("images", "--format", "{{.Size}}", name).stdout
    assert shown == "1.01kB\n"
    cli.run("rmi", name)


# -- removal, prune, disk usage ----------------------------------------------------------


def _images_size(cli: ImageCli) -> float:
    for line in cli.run("system", "df").stdout.splitlines():
        if line.startswith("Images"):
            return _bytes(line.split()[3])
    raise AssertionError("no Images row in system df")


def _bytes(text: str) -> float:
    """``2.05MB`` -> 2050000.0 (docker's decimal units)."""
    m = re.fullmatch(r"([\d.]+)([kMGT]?)B", text.replace("K", "k"))
    assert m, text
    return float(m.group(1)) * 1000 ** " kMGT".index(m.group(2) or " ")


def test_rmi_in_use_then_prune(fresh: Callable[[], ImageCli], hub: LocalRegistry) -> None:
    cli = fresh()
    ref = f"{hub.host}/test/busybox:latest"
    cli.run("pull", ref)
    image_id = cli.image_id(ref)
    name = unique_name()
    cid = cli.run("create", "--name", name, ref, "true").stdout.strip().splitlines()[-1]
    error = cli.fails("rmi", ref, match=r"container")
    assert cid[:12] in error or name in error, error
    assert ref in cli.names()
    cli.run("rmi", "-f", ref)
    assert ref not in cli.names()
    assert image_id in cli.image_ids()  # still used: only untagged
    cli.run("image", "prune", "-f")
    assert image_id in cli.image_ids()
    cli.run("rm", name)
    before = cli.blobs()
    cli.run("image", "prune", "-f")
    assert image_id not in cli.image_ids()
    assert not cli.blobs() and before, (before, cli.blobs())
    assert _images_size(cli) == 0


def test_prune_all_frees_space(fresh: Callable[[], ImageCli], hub: LocalRegistry) -> None:
    cli = fresh()
    cli.run("pull", f"{hub.host}/test/busybox:latest")
    cli.run("pull", f"{hub.host}/test/layered:latest")
    before = _images_size(cli)
    assert before > 1_000_000
    cli.run("image", "prune", "-f")  # nothing dangling: nothing goes
    assert len(cli.image_ids()) == 2
    out = cli.run("image", "prune", "-a", "-f").stdout
    assert "Total reclaimed space" in out and not out.strip().endswith(" 0B")
    assert cli.image_ids() == set()
    assert _images_size(cli) < before
    assert cli.blobs() == set()
    snapshots = cli.root / "snapshots"
    left = [p for p in snapshots.iterdir() if p.name.isdigit()] if snapshots.is_dir() else []
    assert not left, left
    assert not any((snapshots / "tmp").iterdir())


# -- failures: corrupt blobs, killed and concurrent pulls -------------------------------


def test_corrupt_blob_is_rejected(
    fresh: Callable[[], ImageCli], hub: LocalRegistry, big_layout: Path
) -> None:
    repo = f"test/{unique_name()}"
    push_layout(hub, big_layout, f"{repo}:latest")
    hexdigest = _top_layer_digest(big_layout).removeprefix("sha256:")
    blob = hub.dir / "data/docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"
    original = blob.read_bytes()
    try:
        tampered = bytearray(original)
        tampered[len(tampered) // 2] ^= 0xFF
        blob.write_bytes(bytes(tampered))
        cli = fresh()
        ref = f"{hub.host}/{repo}:latest"
        cli.fails("pull", ref, match=r"digest|mismatch|checksum|verif")
        assert not any(repo in n for n in cli.names())
        assert cli.image_ids() == set()
        for name in cli.blobs():  # whatever was kept is sound
            data = (cli.root / "content/blobs/sha256" / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == name
        assert hexdigest not in cli.blobs()
    finally:
        blob.write_bytes(original)


def test_pull_killed_midway_then_again(
    fresh: Callable[[], ImageCli], hub: LocalRegistry, big_layout: Path
) -> None:
    repo = f"test/{unique_name()}"
    push_layout(hub, big_layout, f"{repo}:latest")
    short = _top_layer_digest(big_layout).removeprefix("sha256:")[:12]
    cli = fresh()
    ref = f"{hub.host}/{repo}:latest"
    proc = cli.popen("pull", ref, start_new_session=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(f"{short}: Downloading"):
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    assert ref not in cli.names()
    cli.run("pull", ref, timeout=120)
    assert ref in cli.names()
    out = cli.run("run", "--rm", ref, "sh", "-c", "wc -c < /big.bin").stdout
    assert int(out) == BIG_LAYER_BYTES
    cli.run("rmi", ref)


@pytest.mark.parametrize("round_", [1, 2])
def test_concurrent_pulls_of_one_image(
    fresh: Callable[[], ImageCli], hub: LocalRegistry, big_layout: Path, round_: int
) -> None:
    """Two ``capsa pull`` of one image into an empty store at once (run twice: the race
    on the first opening of the store's databases is not hit every time)."""
    repo = f"test/{unique_name()}"
    push_layout(hub, big_layout, f"{repo}:latest")
    cli = fresh()
    ref = f"{hub.host}/{repo}:latest"
    procs = [cli.popen("pull", ref) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert "Traceback" not in err, err
        assert p.returncode == 0, err
        assert out.strip().splitlines()[-1] == ref
    assert len(cli.image_ids()) == 1
    out = cli.run("run", "--rm", ref, "sh", "-c", "wc -c < /big.bin").stdout
    assert int(out) == BIG_LAYER_BYTES
    cli.run("rmi", ref)
