"""The routes of the notifier's delivery records (and their schemas)."""
