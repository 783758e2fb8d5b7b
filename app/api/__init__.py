"""Routers and their typed dependencies."""
