"""Start-up benchmark: `tracehouse` CLI commands against a server, and what the SDK's start-up hook costs an interpreter."""
