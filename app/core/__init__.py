"""Plumbing shared by every part of the service: settings, database, auth, errors, clock."""
