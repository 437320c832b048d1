from bench.query.run import main

raise SystemExit(main())
