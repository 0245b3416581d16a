"""Limits that more than one service enforces, stated once.

A profile photo is refused above :data:`PHOTO_MAX_BYTES` by the gateway (the HTTP body, before it is
read) and by identity (the decoded upload, and the sanitiser): the three checks must agree, or a
photo one accepts would be refused by the next with another answer.
"""

PHOTO_MAX_BYTES = 2 * 1024 * 1024

# The most pixels identity decodes for a photo (width x height from the image header, checked before a
# single pixel is decoded): a few KB of PNG can declare 40 MP, ~400 MB once decoded (issue 11, finding 5).
# 12 MP is more than any phone camera's profile picture needs.
PHOTO_MAX_PIXELS = 12_000_000

# The longest access-token lifetime identity may be configured to issue (IDENTITY_ACCESS_TOKEN_TTL_S is
# validated against it); the gateway keeps a revoked token's id at least this long, so a revoked token can
# never be accepted again before it expires, whatever lifetime identity was given.
MAX_ACCESS_TOKEN_TTL_S = 3600
