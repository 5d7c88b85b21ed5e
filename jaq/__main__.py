from jaq.cli import main

raise SystemExit(main())
