from grooverack.cli import main

raise SystemExit(main())
