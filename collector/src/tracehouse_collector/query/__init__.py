"""Query modules: read-side questions answered from the store."""
