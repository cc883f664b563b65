"""capsa: a container engine built from the kernel's primitives up."""

__version__ = "0.1.0"
