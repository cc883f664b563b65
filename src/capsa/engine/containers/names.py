"""Container names: Docker's rule for what is valid, and generated adjective_surname names."""

from __future__ import annotations

from capsa.errors import InvalidArgument

_VALID = r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$"  # compiled on use: listing needs no ``re``

_LEFT = (
    "admiring",
    "bold",
    "brave",
    "calm",
    "clever",
    "dazzling",
    "eager",
    "elegant",
    "festive",
    "focused",
    "gallant",
    "gifted",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "loving",
    "lucid",
    "modest",
    "nifty",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "tender",
    "trusting",
    "upbeat",
    "vibrant",
    "wizardly",
    "youthful",
    "zealous",
)
_RIGHT = (
    "albattani",
    "babbage",
    "bohr",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "faraday",
    "fermi",
    "galileo",
    "goodall",
    "hamilton",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "knuth",
    "lamport",
    "lovelace",
    "mayer",
    "meitner",
    "newton",
    "noether",
    "pasteur",
    "ritchie",
    "shannon",
    "thompson",
    "torvalds",
    "turing",
    "wozniak",
    "yalow",
)


def validate_name(name: str) -> None:
    import re

    if not re.match(_VALID, name):
        raise InvalidArgument(
            f'invalid container name "{name}", only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'
        )


def generate_name(taken: set[str]) -> str:
    import secrets  # here: it costs every command 5 ms of imports (random, hmac)

    for attempt in range(100):
        name = f"{secrets.choice(_LEFT)}_{secrets.choice(_RIGHT)}"
        if attempt > 10:
            name += str(secrets.randbelow(10))
        if name not in taken:
            return name
    return f"capsa_{secrets.token_hex(6)}"
