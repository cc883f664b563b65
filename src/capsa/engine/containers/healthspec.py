"""The healthcheck a container runs: the image's HEALTHCHECK overridden by run flags."""

from __future__ import annotations

from capsa.oci import image_spec
from capsa.oci.codec import to_dict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.containers.types import ContainerRecord
    from capsa.store.content import ContentStore


def effective(rec: ContainerRecord, content: ContentStore) -> dict[str, Any] | None:
    """JSON-ready health config (for the monitor loop), or None for no healthcheck."""
    from capsa.engine.containers import health

    config = image_spec.load_config(content.read(rec.image_id))
    image_hc = None
    if config.config and config.config.healthcheck:
        image_hc = health.from_image(
            {k[0].upper() + k[1:]: v for k, v in to_dict(config.config.healthcheck).items()}
        )
    hc = rec.spec.healthcheck
    if hc is None:
        cfg = image_hc
    else:
        disabled = hc.test == ["NONE"]
        cmd = hc.test[1] if hc.test[:1] == ["CMD-SHELL"] and len(hc.test) > 1 else None
        cfg = health.merge(
            image_hc,
            cmd,
            hc.interval or None,
            hc.timeout or None,
            hc.retries or None,
            hc.start_period or None,
            hc.start_interval or None,
            disabled,
        )
        if cfg is not None and hc.test[:1] == ["CMD"]:
            cfg.test = list(hc.test)
    if cfg is None or health.command(cfg) is None:
        return None
    out: dict[str, Any] = {
        "test": cfg.test,
        "interval": cfg.interval,
        "timeout": cfg.timeout,
        "start_period": cfg.start_period,
        "start_interval": cfg.start_interval,
        "retries": cfg.retries,
        "on_failure": hc.on_failure if hc else "none",
    }
    return out
