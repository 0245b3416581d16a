"""UpGestão messaging service: Conversations between staff and customers and internal chat (R1.3)."""
