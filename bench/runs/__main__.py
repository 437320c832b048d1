from bench.runs.run import main

raise SystemExit(main())
