"""Tracehouse's own APIs (REST on the HTTP port)."""
