"""Kernel seam: the only code that talks to the kernel."""
