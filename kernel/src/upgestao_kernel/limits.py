"""Limits that more than one service enforces, stated once.

A profile photo is refused above :data:`PHOTO_MAX_BYTES` by the gateway (the HTTP body, before it is
read) and by identity (the decoded upload, and the sanitiser): the three checks must agree, or a
photo one accepts would be refused by the next with another answer.
"""

PHOTO_MAX_BYTES = 2 * 1024 * 1024
