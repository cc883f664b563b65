"""libc functions by name, through ``_ctypes``: the C half of ``ctypes``.

``capsa-runtime`` is benchmarked against runc, and ``import ctypes`` costs it about
2 ms on top of ``_ctypes`` (the package defines its C type classes and imports
``struct``, ``types`` and ``ctypes._endian``). The runtime's own calls need only this:
call a function with int, ``unsigned long``, bytes (``char *``), buffer and ``None``
(``NULL``) arguments, and get its result (``int``; ``long`` for ``syscall``) and
``errno``. Structs are packed into bytearrays by the callers. Modules off the start-up
path (seccomp, the new mount API, nftables) use ``ctypes`` itself.
"""

from __future__ import annotations

import os
from _ctypes import (
    FUNCFLAG_CDECL,
    FUNCFLAG_PYTHONAPI,
    FUNCFLAG_USE_ERRNO,
    Array,
    CFuncPtr,
    _SimpleCData,
    addressof,
    dlopen,
    get_errno,
)


class _Int(_SimpleCData):
    _type_ = "i"


class _Long(_SimpleCData):
    _type_ = "l"


class ulong(_SimpleCData):
    """An ``unsigned long`` argument (plain ints go as ``int``: 32 bits)."""

    _type_ = "L"


class _Char(_SimpleCData):
    _type_ = "c"


class _Program:
    """What a function pointer needs of its library: the dlopen handle (of the
    program itself, libc and the interpreter included)."""

    def __init__(self) -> None:
        self._handle = dlopen(None, os.RTLD_NOW)  # type: ignore[arg-type]  # None: the program


def _kind(keep_gil: bool, result: type[_SimpleCData]) -> type[CFuncPtr]:
    flags = FUNCFLAG_CDECL | FUNCFLAG_USE_ERRNO
    if keep_gil:  # as ctypes.PyDLL functions; otherwise released, as ctypes.CDLL's
        flags |= FUNCFLAG_PYTHONAPI
    return type("Function", (CFuncPtr,), {"_flags_": flags, "_restype_": result})


_program: list[_Program] = []
_kinds: dict[tuple[bool, bool], type[CFuncPtr]] = {}
_functions: dict[tuple[str, bool], CFuncPtr] = {}
_buffer_types: dict[int, type[Array[_Char]]] = {}

Arg = int | bytes | ulong | Array[_Char] | None


def buffer(data: bytearray) -> Array[_Char]:
    """A ``char *`` argument over ``data``: the callee reads it, and what it writes
    there shows in ``data``. Structs are packed into ``data`` by the caller."""
    kind = _buffer_types.get(len(data))
    if kind is None:
        kind = type(f"char_{len(data)}", (Array,), {"_type_": _Char, "_length_": len(data)})
        _buffer_types[len(data)] = kind
    return kind.from_buffer(data)


def address(buf: Array[_Char]) -> int:
    """Where ``buf`` (from ``buffer``) is in memory, for structs that point to it."""
    return addressof(buf)


def function(name: str, *, keep_gil: bool = False) -> CFuncPtr:
    """The C function ``name`` (looked up once). It returns ``int``, but ``syscall``
    returns ``long``. ``keep_gil`` is for the interpreter's own API and for a fork
    that must leave the child holding the GIL."""
    fn = _functions.get((name, keep_gil))
    if fn is None:
        if not _program:
            _program.append(_Program())
        is_long = name == "syscall"
        kind = _kinds.get((keep_gil, is_long))
        if kind is None:
            kind = _kinds[(keep_gil, is_long)] = _kind(keep_gil, _Long if is_long else _Int)
        # any object with a ``_handle`` does, as ctypes' own CDLL is one
        fn = kind((name, _program[0]))  # type: ignore[arg-type]
        _functions[(name, keep_gil)] = fn
    return fn


def call(name: str, *args: Arg) -> int:
    """``name(*args)``; ``OSError`` with the call's errno when it returns -1."""
    ret = int(function(name)(*args))
    if ret == -1:
        err = get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def last_errno() -> int:
    """The errno of this thread's last call through this module."""
    return get_errno()
