from tracehouse_collector.cli.app import main

raise SystemExit(main())
