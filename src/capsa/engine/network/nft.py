"""libnftables through ctypes: JSON batches in, JSON listings out.

Each ``run`` hands libnftables one JSON document, which the kernel applies as a single
transaction: every command of a batch takes effect, or none does. Errors come back as
the library's error buffer, first line kept, prefixed with what the caller was doing.
Never shells out to ``nft``.
"""

from __future__ import annotations

import ctypes
import json

from capsa.errors import Internal, Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any

LIBRARY = "libnftables.so.1"

# enum nft_output_flags (nftables/libnftables.h)
OUTPUT_HANDLE = 1 << 3
OUTPUT_JSON = 1 << 4

Command = dict[str, "Any"]


class Nft:
    """One libnftables context. Not thread-safe: one per thread (they are cheap)."""

    def __init__(self, library: str = LIBRARY) -> None:
        try:
            lib = ctypes.CDLL(library, use_errno=True)
        except OSError as e:
            raise Unavailable(f"nftables: cannot load {library} (install libnftables1)") from e
        _declare(lib)
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            raise Internal("nftables: cannot create a context")
        self._lib, self._ctx = lib, ctx
        lib.nft_ctx_output_set_flags(ctx, OUTPUT_JSON | OUTPUT_HANDLE)
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)

    def run(self, commands: list[Command], what: str) -> list[dict[str, Any]]:
        """Apply ``commands`` as one transaction; return the objects nft printed.

        ``what`` names the operation for the error message ("publish ports of web").
        """
        if not commands:
            return []
        return self.run_raw(json.dumps({"nftables": commands}), what)

    def run_raw(self, document: str, what: str) -> list[dict[str, Any]]:
        if self._ctx is None:
            raise Internal("nftables: context is closed")
        rc = self._lib.nft_run_cmd_from_buffer(self._ctx, document.encode())
        out = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()
        err = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode()
        if rc != 0:
            raise _error(what, err)
        if not out.strip():
            return []
        objects: list[dict[str, Any]] = json.loads(out).get("nftables", [])
        return [o for o in objects if "metainfo" not in o]

    def listing(self, command: Command, what: str) -> list[dict[str, Any]]:
        """A ``{"list": ...}`` command's objects (rules carry their handles)."""
        return self.run([{"list": command}], what)

    def close(self) -> None:
        if self._ctx is not None:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None

    def __enter__(self) -> Nft:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _declare(lib: ctypes.CDLL) -> None:
    p, c_int, c_uint = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint
    lib.nft_ctx_new.argtypes, lib.nft_ctx_new.restype = [c_uint], p
    lib.nft_ctx_free.argtypes, lib.nft_ctx_free.restype = [p], None
    lib.nft_ctx_output_set_flags.argtypes = [p, c_uint]
    lib.nft_ctx_output_set_flags.restype = None
    for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
        getattr(lib, name).argtypes, getattr(lib, name).restype = [p], c_int
    for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
        getattr(lib, name).argtypes, getattr(lib, name).restype = [p], ctypes.c_char_p
    lib.nft_run_cmd_from_buffer.argtypes = [p, ctypes.c_char_p]
    lib.nft_run_cmd_from_buffer.restype = c_int


def _error(what: str, text: str) -> Internal:
    """The first meaningful line of libnftables' error buffer, naming ``what``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line.split("Error:", 1)[1].strip() for line in lines if "Error:" in line]
    reason = (errors[0] if errors else lines[0] if lines else "") or "failed"
    return Internal(f"nftables: {what}: {reason[0].lower()}{reason[1:]}")


# JSON vocabulary (libnftables-json(5)): small builders so policy code reads like rules.


class Table:
    """Commands addressing one table: ``Table("inet", "capsa").add_chain("x")``."""

    def __init__(self, family: str, name: str) -> None:
        self.family, self.name = family, name

    def ref(self, **fields: Any) -> dict[str, Any]:
        return {"family": self.family, "table": self.name, **fields}

    def table(self, verb: str) -> Command:
        return {verb: {"table": {"family": self.family, "name": self.name}}}

    def chain(self, verb: str, name: str, **hook: Any) -> Command:
        return {verb: {"chain": self.ref(name=name, **hook)}}

    def base_chain(self, name: str, kind: str, hook: str, prio: int) -> Command:
        return self.chain("add", name, type=kind, hook=hook, prio=prio, policy="accept")

    def set(self, name: str, key_type: str, *, data: str = "", interval: bool = False) -> Command:
        kind = "map" if data else "set"
        fields: dict[str, Any] = {"name": name, "type": key_type}
        if data:
            fields["map"] = data
        if interval:
            fields["flags"] = ["interval"]
        return {"add": {kind: self.ref(**fields)}}

    def element(self, verb: str, name: str, elements: list[Any]) -> Command:
        return {verb: {"element": self.ref(name=name, elem=elements)}}

    def rule(self, chain: str, *expr: dict[str, Any], comment: str = "") -> Command:
        fields: dict[str, Any] = {"chain": chain, "expr": list(expr)}
        if comment:
            fields["comment"] = comment
        return {"add": {"rule": self.ref(**fields)}}

    def delete_rule(self, chain: str, handle: int) -> Command:
        return {"delete": {"rule": self.ref(chain=chain, handle=handle)}}


def match(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def meta(key: str) -> dict[str, Any]:
    return {"meta": {"key": key}}


def payload(protocol: str, field: str) -> dict[str, Any]:
    return {"payload": {"protocol": protocol, "field": field}}


def ct(key: str) -> dict[str, Any]:
    return {"ct": {"key": key}}


def fib_daddr_type() -> dict[str, Any]:
    return {"fib": {"result": "type", "flags": ["daddr"]}}


def prefix(cidr: str) -> dict[str, Any]:
    addr, _, length = cidr.partition("/")
    return {"prefix": {"addr": addr, "len": int(length)}}


def jump(chain: str) -> dict[str, Any]:
    return {"jump": {"target": chain}}


def vmap(key: dict[str, Any], map_name: str) -> dict[str, Any]:
    return {"vmap": {"key": key, "data": f"@{map_name}"}}


def dnat(family: str, addr: str, port: int) -> dict[str, Any]:
    return {"dnat": {"family": family, "addr": addr, "port": port}}


ACCEPT: dict[str, Any] = {"accept": None}
DROP: dict[str, Any] = {"drop": None}
MASQUERADE: dict[str, Any] = {"masquerade": None}
