"""``python -m portal.desk``: the same as the ``portal-desk`` command."""

from portal.desk.cli import main

raise SystemExit(main())
