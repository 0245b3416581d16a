"""Integrations: outbound webhooks to the tools a customer integrates (issue 15)."""
