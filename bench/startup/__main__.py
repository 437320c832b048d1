from bench.startup.run import main

raise SystemExit(main())
