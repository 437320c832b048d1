from bench.client.run import main

raise SystemExit(main())
