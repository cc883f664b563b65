"""Pure OCI data: runtime-spec and image-spec dataclasses."""
