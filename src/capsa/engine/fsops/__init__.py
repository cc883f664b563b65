"""Files in and out of containers: cp, export, diff and commit."""
