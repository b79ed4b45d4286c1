"""`python -m retentionrules` runs the command line."""

from .cli import main

main()
