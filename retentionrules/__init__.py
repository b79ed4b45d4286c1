"""retentionrules: a rules engine for keeping customers.

The Python API lives in `retentionrules.api` (check, format); this module stays import-light so
that `retentionrules --help` starts fast.
"""

__version__ = "0.1.0"
