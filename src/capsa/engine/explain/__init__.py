"""capsa explain: what makes a container a container, next to the host."""
