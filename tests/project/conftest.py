"""The repository as shipped; the packaging test renders the installed UI in a browser."""

from browser import browser, ui  # noqa: F401  (fixtures)
