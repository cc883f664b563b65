"""The capsa command line."""
