"""Adapters of the privacy service: its SQL tables and stores, the audit stream."""
