from bench.instrumentation.run import main

raise SystemExit(main())
