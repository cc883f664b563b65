"""The OCI runtime: bundle -> isolated process (capsa-runtime)."""
