"""The benchmark of issues 8 and 13: quartapp against the apps it replaces, driven by wrk.

Run it with ``make bench`` (or ``python -m bench --help``). The reference apps live in
``bench/apps``; nothing in ``quartapp`` imports from here.
"""
