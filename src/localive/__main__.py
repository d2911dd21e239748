from localive.cli import main

raise SystemExit(main())
