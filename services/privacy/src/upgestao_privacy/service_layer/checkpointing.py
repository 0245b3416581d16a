"""When the tree is signed: the one rule the ingest, the timer and the queries share."""

from __future__ import annotations

from datetime import datetime

from ..adapters.ports import AuditLogRepository
from ..domain.checkpoints import Checkpoint, CheckpointSigner


def checkpoint_if_due(log: AuditLogRepository, signer: CheckpointSigner, now: datetime, *, every: int,
                      force: bool = False) -> Checkpoint | None:
    """Sign the current tree when ``every`` records arrived since the last checkpoint
    (or, with ``force``, when any did). Takes the head lock: one signer at a time."""
    head = log.head(lock=True)
    latest = log.latest_checkpoint()
    last_size = latest.tree_size if latest is not None else -1
    grown = head.tree_size - max(last_size, 0)
    if head.tree_size == last_size or (not force and grown < every):
        return None
    checkpoint = signer.sign(head.tree_size, head.frontier.root(), now)
    log.add_checkpoint(checkpoint)
    return checkpoint
