"""Docker's string syntaxes, read into typed values: the one place that parses them.

Frontends read a user's text here and hand the engine typed values; the API gets
Docker's structured JSON instead and turns it into the same records. One module per
family: ``durations`` (Go durations, ``--since``/``--until`` times), ``sizes`` (sizes,
``--cpus``, rates, device throttles), ``mounts`` (``-v``, ``--mount``, ``--tmpfs``,
``--device``, ``cp``'s ``CONTAINER:PATH``), ``network`` (``-p``, ``--add-host``),
``keyvalue`` (``key=value`` lists, env and label files), ``filters`` (``--filter``) and
``policies`` (``--restart``, ``--health-on-failure``, ``--log-opt``, ``--ulimit``,
``--security-opt``).

Layering: these modules import ``capsa.errors``, ``capsa.oci`` records and the engine's
type modules (``capsa.engine.containers.types``, ``images.types``, ``containers.limits`` for
Docker's ranges, the records of ``restart`` and ``logs``), never an engine service.
Where the engine itself reads a Docker string it stored (the restart policy and
``--log-opt`` values kept in a container's spec and read by the monitor, ``--ulimit``
at create, the ``until`` of a prune filter), the engine imports ``capsa.syntax`` for
it. Bad input raises ``capsa.errors.InvalidArgument`` with a one-line message in
Docker's words. Nothing here works at import time; this package imports nothing.
"""
