"""The API's images endpoints, driven by raw HTTP, docker-py and the docker CLI against a
loopback registry (Debian's docker-registry): pulled images really run, pushed ones
really arrive, saved archives load back, committed containers become images."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from tests.helpers import api as api_helpers
from tests.helpers import capsa_cli, requires
from tests.helpers.api import ApiService
from tests.helpers.capsa_cli import CapsaCli
from tests.helpers.registry import AUTH_PASSWORD, AUTH_USER, LocalRegistry

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa
api_module = api_helpers.api_module
api = api_helpers.api


@pytest.fixture(scope="module")
def registry() -> Iterator[LocalRegistry]:
    requires("docker-registry")
    reg = LocalRegistry()
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def auth_registry() -> Iterator[LocalRegistry]:
    requires("docker-registry", "htpasswd")
    reg = LocalRegistry(auth=(AUTH_USER, AUTH_PASSWORD))
    yield reg
    reg.stop()


def _lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def _filters(doc: dict[str, list[str]]) -> str:
    return quote(json.dumps(doc))


def _image_id(api: ApiService, name: str) -> str:
    reply = api.request("GET", f"/images/{name}/json")
    assert reply.status == 200, reply
    image_id: str = reply.json()["Id"]
    return image_id


def _tag(api: ApiService, source: str, repo: str, tag: str) -> None:
    reply = api.request("POST", f"/images/{source}/tag?repo={quote(repo)}&tag={tag}")
    assert reply.status == 201, reply


def _auth_header(user: str, password: str, server: str) -> dict[str, str]:
    doc = {"username": user, "password": password, "serveraddress": server}
    return {"X-Registry-Auth": base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()}


# -- local queries and names ----------------------------------------------------------


def test_list_inspect_history_and_filters(api: ApiService, capsa: CapsaCli) -> None:
    listed = api.request("GET", "/images/json").json()
    (mine,) = [i for i in listed if capsa.image in i["RepoTags"]]
    assert set(mine) >= {"Id", "ParentId", "RepoTags", "RepoDigests", "Created", "Size", "Labels"}
    assert mine["Id"].startswith("sha256:") and mine["Size"] > 0
    by_ref = api.request("GET", "/images/json?filters=" + _filters({"reference": ["capsa-test/*"]}))
    assert capsa.image in [t for i in by_ref.json() for t in i["RepoTags"]]
    dangling = api.request("GET", "/images/json?filters=" + _filters({"dangling": ["true"]}))
    assert mine["Id"] not in [i["Id"] for i in dangling.json()]
    labelled = api.request("GET", "/images/json?filters=" + _filters({"label": ["nope=1"]}))
    assert labelled.json() == []
    assert api.request("GET", "/images/json?filters=" + _filters({"colour": ["x"]})).status == 400

    doc = api.request("GET", f"/images/{capsa.image}/json").json()
    assert doc["Id"] == mine["Id"] and capsa.image in doc["RepoTags"]
    assert doc["Config"]["Cmd"] == ["/bin/sh"] and doc["RootFS"]["Type"] == "layers"
    assert _image_id(api, mine["Id"]) == mine["Id"]
    assert _image_id(api, mine["Id"].removeprefix("sha256:")[:12]) == mine["Id"]
    history = api.request("GET", f"/images/{capsa.image}/history").json()
    assert history[0]["Id"] == mine["Id"] and history[0]["Tags"] == [capsa.image]
    assert {"Created", "CreatedBy", "Size", "Comment"} <= set(history[0])
    for path in ("/images/capsa-test/nope:1/json", "/images/capsa-test/nope:1/history"):
        reply = api.request("GET", path)
        assert reply.status == 404 and set(reply.json()) == {"message"}, path
    # the docker CLI lists and inspects it
    rows = api.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert capsa.image in rows
    got = api.docker("image", "inspect", "-f", "{{.Id}}", capsa.image).stdout.strip()
    assert got == mine["Id"]


def test_tag_and_remove_names_with_slashes(api: ApiService, capsa: CapsaCli) -> None:
    original = _image_id(api, capsa.image)
    repo = f"localhost:5000/{capsa.name()}/deep"
    _tag(api, capsa.image, repo, "t1")
    assert _image_id(api, f"{repo}:t1") == original
    assert f"{repo}:t1" in api.request("GET", f"/images/{repo}:t1/json").json()["RepoTags"]
    assert api.request("GET", f"/images/{repo}:t1/history").status == 200
    # docker-py quotes the name but keeps its slashes and colons
    client = api.client()
    assert client.images.get(f"{repo}:t1").id == original
    reply = api.request("DELETE", f"/images/{repo}:t1")
    assert reply.status == 200 and reply.json() == [{"Untagged": f"{repo}:t1"}]
    assert api.request("GET", f"/images/{repo}:t1/json").status == 404
    assert _image_id(api, capsa.image) == original
    assert api.request("POST", f"/images/{capsa.image}/tag").status == 400
    assert api.request("POST", f"/images/{repo}:zz/tag?repo=x&tag=y").status == 404
    missing = api.request("DELETE", f"/images/{repo}:t1")
    assert missing.status == 404 and set(missing.json()) == {"message"}


def test_search_is_a_clear_error(api: ApiService) -> None:
    reply = api.request("GET", "/images/search?term=busybox")
    assert reply.status == 501
    assert set(reply.json()) == {"message"} and "not supported" in reply.json()["message"]
    proc = api.docker("search", "busybox", check=False)
    assert proc.returncode != 0 and "not supported" in proc.stderr


# -- registry: pull and push ----------------------------------------------------------


def test_push_and_pull_with_the_docker_cli(
    api: ApiService, capsa: CapsaCli, registry: LocalRegistry
) -> None:
    repo = f"{registry.host}/cli/busybox"
    ref = f"{repo}:v1"
    api.docker("tag", capsa.image, ref)
    out = api.docker("push", ref).stdout
    assert f"The push refers to repository [{repo}]" in out
    assert "Pushed" in out and "v1: digest: sha256:" in out
    api.docker("rmi", ref)
    assert api.request("GET", f"/images/{ref}/json").status == 404
    out = api.docker("pull", ref).stdout
    assert "v1: Pulling from cli/busybox" in out
    assert "Already exists" in out and "Digest: sha256:" in out  # its one layer is here
    assert f"Status: Downloaded newer image for {ref}" in out
    assert capsa.run("run", "--rm", ref, "echo", "pulled").stdout == "pulled\n"
    again = api.docker("pull", ref).stdout
    assert f"Status: Image is up to date for {ref}" in again
    listed = api.docker("images", "--format", "{{.Repository}}:{{.Tag}}", repo).stdout.split()
    assert listed == [ref]
    missing = api.docker("pull", f"{repo}:absent", check=False)
    assert missing.returncode != 0
    api.docker("rmi", ref)


def test_pull_stream_and_errors_raw(
    api: ApiService, capsa: CapsaCli, registry: LocalRegistry
) -> None:
    # an image with a layer of its own: pulled back, that layer is downloaded
    ctr = capsa.name()
    capsa.run("run", "--name", ctr, capsa.image, "sh", "-c", f"echo {ctr} > /unique")
    repo = f"{registry.host}/raw/busybox"
    made = api.request("POST", f"/commit?container={ctr}&repo={quote(repo)}&tag=v1")
    assert made.status == 201, made
    pushed = api.request("POST", f"/images/{repo}/push?tag=v1")
    assert pushed.status == 200 and pushed.headers["Content-Type"] == "application/json"
    messages = _lines(pushed.body)
    assert messages[0] == {"status": f"The push refers to repository [{repo}]"}
    assert not [m for m in messages if "error" in m], messages
    (aux,) = [m["aux"] for m in messages if "aux" in m]
    assert aux["Tag"] == "v1" and aux["Digest"].startswith("sha256:")
    layer_ids = {m["id"] for m in messages if "id" in m}
    assert layer_ids and all(len(i) == 12 for i in layer_ids)
    removed = api.request("DELETE", f"/images/{repo}:v1").json()
    assert {"Deleted": made.json()["Id"]} in removed

    reply = api.request("POST", f"/images/create?fromImage={quote(repo)}&tag=v1")
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/json"
    messages = _lines(reply.body)
    assert messages[0] == {"status": "Pulling from raw/busybox", "id": "v1"}
    statuses = [m["status"] for m in messages]
    assert {"Pulling fs layer", "Pull complete", "Already exists"} <= set(statuses), statuses
    assert f"Digest: {aux['Digest']}" in statuses
    assert statuses[-1] == f"Status: Downloaded newer image for {repo}:v1"
    for m in messages:
        if m["status"] in ("Downloading", "Extracting") and m["progressDetail"]:
            assert m["progressDetail"]["current"] <= m["progressDetail"]["total"]
    digests = api.request("GET", f"/images/{repo}:v1/json").json()["RepoDigests"]
    assert [d.split("@")[1] for d in digests] == [aux["Digest"]]
    assert capsa.run("run", "--rm", f"{repo}:v1", "cat", "/unique").stdout == f"{ctr}\n"
    # by digest, as fromImage=REPO&tag=DIGEST
    by_digest = api.request("POST", f"/images/create?fromImage={quote(repo)}&tag={aux['Digest']}")
    assert by_digest.status == 200
    assert _lines(by_digest.body)[-1]["status"].startswith("Status: Image is up to date for")

    # an error before anything was sent is the answer's status
    absent = api.request("POST", f"/images/create?fromImage={quote(repo)}&tag=absent")
    assert absent.status == 404 and set(absent.json()) == {"message"}
    bad = api.request("POST", "/images/create?fromImage=lower/UPPER")
    assert bad.status == 400
    assert api.request("POST", "/images/create").status == 400
    nothing = api.request("POST", f"/images/{repo}/push?tag=absent")
    assert nothing.status == 404 and set(nothing.json()) == {"message"}
    assert api.request("DELETE", f"/images/{repo}:v1").status == 200


def test_docker_py_push_pull_save_load(
    api: ApiService, capsa: CapsaCli, registry: LocalRegistry
) -> None:
    client = api.client()
    repo = f"{registry.host}/py/busybox"
    ref = f"{repo}:v2"
    assert client.images.get(capsa.image).tag(repo, "v2")
    lines = list(client.images.push(repo, tag="v2", stream=True, decode=True))
    assert not [m for m in lines if "error" in m], lines
    assert any("aux" in m and m["aux"]["Digest"].startswith("sha256:") for m in lines)
    client.images.remove(ref)
    image = client.images.pull(repo, tag="v2")
    assert ref in image.tags

    data = b"".join(image.save(named=ref))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == [ref]
    client.images.remove(ref)
    (loaded,) = client.images.load(data)
    assert ref in loaded.tags and loaded.id == image.id
    assert capsa.run("run", "--rm", ref, "echo", "loaded").stdout == "loaded\n"

    listed = client.images.list(name=repo)
    assert [i.id for i in listed] == [image.id]
    pruned = client.images.prune(filters={"dangling": True})
    assert set(pruned) == {"ImagesDeleted", "SpaceReclaimed"}
    client.images.remove(ref)
    assert ref not in [t for i in client.images.list(name=repo) for t in i.tags]


def test_registry_auth_header(
    api: ApiService, capsa: CapsaCli, auth_registry: LocalRegistry
) -> None:
    """``X-Registry-Auth`` carries the credentials of one pull or push; none are stored."""
    import docker

    client = api.client()
    repo = f"{auth_registry.host}/private/busybox"
    ref = f"{repo}:v1"
    _tag(api, capsa.image, repo, "v1")
    denied = api.request("POST", f"/images/{repo}/push?tag=v1")
    errors = [m for m in _lines(denied.body) if "error" in m] if denied.status == 200 else []
    assert denied.status != 200 or errors, denied
    if errors:
        assert errors[0]["errorDetail"]["message"] == errors[0]["error"]
    wrong = _auth_header(AUTH_USER, "wrong", auth_registry.host)
    refused = api.request("POST", f"/images/{repo}/push?tag=v1", headers=wrong)
    assert refused.status != 200 or "error" in refused.body.decode()
    good = _auth_header(AUTH_USER, AUTH_PASSWORD, auth_registry.host)
    pushed = api.request("POST", f"/images/{repo}/push?tag=v1", headers=good)
    assert pushed.status == 200 and not [m for m in _lines(pushed.body) if "error" in m]
    assert api.request("DELETE", f"/images/{ref}").status == 200

    with pytest.raises(docker.errors.APIError):
        client.images.pull(repo, tag="v1")
    auth = {"username": AUTH_USER, "password": AUTH_PASSWORD}
    image = client.images.pull(repo, tag="v1", auth_config=auth)
    assert ref in image.tags
    assert capsa.run("run", "--rm", ref, "echo", "private").stdout == "private\n"
    bad = api.request("POST", f"/images/{repo}/push?tag=v1", headers={"X-Registry-Auth": "!!"})
    assert bad.status == 400
    client.images.remove(ref)


# -- archives -------------------------------------------------------------------------


def test_save_and_load_with_the_docker_cli(
    api: ApiService, capsa: CapsaCli, tmp_path: Path
) -> None:
    repo = f"capsa-test/{capsa.name()}"
    _tag(api, capsa.image, repo, "one")
    _tag(api, capsa.image, repo, "two")
    archive = tmp_path / "saved.tar"
    api.docker("save", "-o", str(archive), f"{repo}:one")
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == [f"{repo}:one"]
    api.docker("rmi", f"{repo}:one")
    out = api.docker("load", "-i", str(archive)).stdout
    assert f"Loaded image: {repo}:one" in out
    assert capsa.run("run", "--rm", f"{repo}:one", "echo", "back").stdout == "back\n"

    both = api.request(
        "GET", f"/images/get?names={quote(repo + ':one')}&names={quote(repo + ':two')}"
    )
    assert both.status == 200 and both.headers["Content-Type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(both.body)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert sorted(t for m in manifest for t in m["RepoTags"]) == [f"{repo}:one", f"{repo}:two"]
    single = api.request("GET", f"/images/{repo}:two/get")
    assert single.status == 200
    with tarfile.open(fileobj=io.BytesIO(single.body)) as tar:
        assert tar.getmember("manifest.json")
    for tag in ("one", "two"):
        assert api.request("DELETE", f"/images/{repo}:{tag}").status == 200
    reply = api.request(
        "POST", "/images/load?quiet=0", both.body, {"Content-Type": "application/x-tar"}
    )
    assert reply.status == 200
    streams = sorted(m["stream"] for m in _lines(reply.body))
    assert streams == [f"Loaded image: {repo}:one\n", f"Loaded image: {repo}:two\n"]
    assert api.request("GET", f"/images/{repo}:two/json").status == 200

    assert api.request("GET", "/images/capsa-test/absent:1/get").status == 404
    assert api.request("GET", "/images/get").status == 400
    broken = api.request("POST", "/images/load", b"not a tar at all" * 64)
    assert broken.status == 400 and set(broken.json()) == {"message"}
    for tag in ("one", "two"):
        assert api.request("DELETE", f"/images/{repo}:{tag}").status == 200


def test_import_then_prune_dangling(
    api: ApiService, capsa: CapsaCli, busybox_tarball: Path
) -> None:
    data = busybox_tarball.read_bytes()
    reply = api.request(
        "POST", "/images/create?fromSrc=-&changes=" + quote('CMD ["/bin/sh"]'), data
    )
    assert reply.status == 200, reply
    (status,) = _lines(reply.body)
    image_id = status["status"]
    assert image_id.startswith("sha256:")
    dangling = api.request("GET", "/images/json?filters=" + _filters({"dangling": ["true"]}))
    assert image_id in [i["Id"] for i in dangling.json()]
    assert capsa.run("run", "--rm", image_id, "echo", "imported").stdout == "imported\n"
    since = api.request("GET", "/images/json?filters=" + _filters({"since": [capsa.image]}))
    assert image_id in [i["Id"] for i in since.json()]
    before = api.request("GET", "/images/json?filters=" + _filters({"before": [image_id]}))
    assert image_id not in [i["Id"] for i in before.json()]
    assert capsa.image in [t for i in before.json() for t in i["RepoTags"]]
    pruned = api.request("POST", "/images/prune").json()
    assert {"Deleted": image_id} in pruned["ImagesDeleted"]
    assert pruned["SpaceReclaimed"] > 0
    assert api.request("GET", f"/images/{image_id}/json").status == 404
    assert api.request("GET", f"/images/{capsa.image}/json").status == 200
    empty = api.request("POST", "/images/prune").json()
    assert empty["ImagesDeleted"] in (None, [])


# -- commit ---------------------------------------------------------------------------


def test_commit_then_remove_in_use(api: ApiService, capsa: CapsaCli) -> None:
    ctr = capsa.name()
    capsa.run("run", "--name", ctr, capsa.image, "sh", "-c", "echo made > /made")
    repo = f"capsa-test/{capsa.name()}"
    changes = quote('CMD ["cat", "/made"]')
    reply = api.request(
        "POST",
        f"/commit?container={ctr}&repo={repo}&tag=t&comment=a+note&author=me&changes={changes}",
    )
    assert reply.status == 201, reply
    image_id = reply.json()["Id"]
    doc = api.request("GET", f"/images/{repo}:t/json").json()
    assert doc["Id"] == image_id and doc["Author"] == "me" and doc["Comment"] == "a note"
    assert doc["Config"]["Cmd"] == ["cat", "/made"]
    assert capsa.run("run", "--rm", f"{repo}:t").stdout == "made\n"

    # docker-py: the container config's Cmd applies too
    client = api.client()
    image = client.containers.get(ctr).commit(repo, "py", conf={"Cmd": ["echo", "py"]})
    assert f"{repo}:py" in image.tags
    assert capsa.run("run", "--rm", f"{repo}:py").stdout == "py\n"
    unsupported = api.request("POST", f"/commit?container={ctr}", {"Memory": 5})
    assert unsupported.status == 400 and "Memory" in unsupported.json()["message"]
    assert api.request("POST", f"/commit?container={capsa.name()}").status == 404

    user = capsa.name()
    capsa.run("create", "--name", user, f"{repo}:t")
    in_use = api.request("DELETE", f"/images/{repo}:t")
    assert in_use.status == 409 and set(in_use.json()) == {"message"}
    forced = api.request("DELETE", f"/images/{repo}:t?force=1")
    assert forced.status == 200 and {"Untagged": f"{repo}:t"} in forced.json()
    capsa.run("rm", user)
    removed = api.request("DELETE", f"/images/{repo}:py").json()
    assert {"Untagged": f"{repo}:py"} in removed and any("Deleted" in r for r in removed)
