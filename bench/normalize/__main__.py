from bench.normalize.run import main

raise SystemExit(main())
