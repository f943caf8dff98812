"""`python -m modeljob`: the same entry point as the `modeljob` console script."""

from modeljob.cli import main

raise SystemExit(main())
