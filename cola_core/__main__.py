from cola_core.cli import main

raise SystemExit(main())
