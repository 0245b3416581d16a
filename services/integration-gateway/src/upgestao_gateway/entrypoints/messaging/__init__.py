"""The messaging routes (teams, conversations, messages, staff chats, attachments) and their schemas."""
