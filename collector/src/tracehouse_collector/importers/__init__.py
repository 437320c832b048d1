"""Readers that turn other tools' files into run snapshots for `tracehouse import`."""
