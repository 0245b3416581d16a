"""Commands of messaging's search: ``python -m upgestao_messaging reindex``.

    reindex [--batch 500]
        rebuild the search index from the messages: every live message's body is opened through the
        vault (each open audited, purpose "search index rebuild"), normalised and hashed under the current
        MESSAGING_SEARCH_KEY, its entries written with its terms' signature; entries of deleted or erased
        messages go. Needed after changing the key (the old terms match nothing), after restoring a database
        whose index is older than its messages, or to check it; after migration 0005, it gives the entries of
        before their signature (until then they are probed as before the signatures, a little slower).
        Safe while the service runs: each batch replaces its messages' entries in one
        transaction (a message sent meanwhile is indexed by the service as usual), so searches keep
        answering, with the old key's terms until their message's batch is done.

The index cannot be rebuilt from the event log as the read models are (``rebuild``): the log holds the
bodies sealed, and only an audited open gives the words back.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from upgestao_kernel.cli import CONFIG_ERROR_EXIT, ServiceCommand
from upgestao_kernel.config import ConfigError
from upgestao_kernel.unit_of_work import is_erased

from .adapters.search_index import SqlSearchIndex, drop_stale, live_messages_after, load_search_key
from .domain.search import TermHasher

PURPOSE = "search index rebuild"
DEFAULT_BATCH = 500


def reindex(make_unit_of_work: Callable[[], Any], hasher: TermHasher, *, batch: int = DEFAULT_BATCH,
            progress: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Re-index every live message, batch by batch; returns ``(indexed, entries dropped)``."""
    indexed, position = 0, -1
    while True:
        with make_unit_of_work() as uow:
            found = live_messages_after(uow.conn, position, batch)
            index = SqlSearchIndex(uow.conn)
            for message in found:
                opened = uow.personal.open(subject_id=message.subject_id, resource_type="message",
                                           resource_id=message.id, sealed={"body": message.body_sealed},
                                           purpose=PURPOSE)["body"]
                if opened is None or is_erased(opened):
                    index.remove(message.id)  # shredded, its row not marked yet: nothing to find
                    continue
                index.replace(message_id=message.id, position=message.position,
                              container_kind=message.container_kind, container_id=message.container_id,
                              subject_id=message.subject_id, terms=hasher.hashes(opened))
                indexed += 1
        if not found:
            break
        position = found[-1].position
        if progress is not None:
            progress(indexed)
    with make_unit_of_work() as uow:
        dropped = drop_stale(uow.conn)
    return indexed, dropped


def _configure_reindex(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                        help=f"messages per transaction ({DEFAULT_BATCH})")


def _reindex(definition, settings, keys, args) -> int:
    from upgestao_kernel.cli import system_units_of_work

    if not 1 <= args.batch <= 10_000:
        print("upgestao-messaging: reindex: --batch must be between 1 and 10000", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    try:
        key = load_search_key(settings, os.environ)
    except ConfigError as exc:
        print(f"upgestao-messaging: reindex: {exc}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    make, engine = system_units_of_work(definition, settings, keys)
    started = time.monotonic()
    try:
        indexed, dropped = reindex(make, TermHasher(key), batch=args.batch,
                                   progress=lambda n: print(f"  {n} messages indexed", file=sys.stderr))
    finally:
        engine.dispose()
    print(f"reindexed {indexed} messages of {definition.name} in {time.monotonic() - started:.1f} s "
          f"({dropped} entries of deleted or erased messages dropped)")
    return 0


COMMANDS = {
    "reindex": ServiceCommand("rebuild the search index from the messages (audited opens; after a key change)",
                              _configure_reindex, _reindex),
}
