"""`python -m cascadeprune ...` is the `cascadeprune` command."""

from cascadeprune.cli import main

raise SystemExit(main())
