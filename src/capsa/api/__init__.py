"""Docker-compatible HTTP API (later issue); wire.py holds Docker's JSON shapes."""
