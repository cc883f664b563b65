"""The per-container monitor: its arguments (``args``, one record per phase), its setup
(``setup``, started with ``-m``), supervision loop, the run root's monitor host, shims,
standby, sleep, the databases' keeper and the warm start of commands."""
