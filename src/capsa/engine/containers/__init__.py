"""Containers: the service (``service``), its spec and records (``types``), the
monitor's launch, exec, logs, stats, health, restart policies, the OCI config
(``specgen``) and the container's networks (``netwire``)."""
