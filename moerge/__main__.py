from moerge.cli import main

raise SystemExit(main())
