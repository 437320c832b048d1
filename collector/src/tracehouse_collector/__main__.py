from tracehouse_collector.cli import main

raise SystemExit(main())
