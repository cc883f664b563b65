"""A small, safe subset of Go's text/template, as docker's ``--format`` uses it.

``lexer`` -> ``parser`` (a tree of ``nodes``) -> ``evaluator``, which calls the function
table in ``funcs`` (``printf`` for fmt's verbs) and prints with ``values``; ``template``
ties them into one class and ``tabwriter`` aligns table output. The public front is
``capsa.cli.template``; importing this package imports none of its modules.
"""
