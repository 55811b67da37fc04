from contributor.cli import main

raise SystemExit(main())
