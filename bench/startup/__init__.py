"""Start-up benchmark: what the `tracehouse` start-up hook costs an interpreter."""
