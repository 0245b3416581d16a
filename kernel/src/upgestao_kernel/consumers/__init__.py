"""The consumer toolkit: every loop that reads from or publishes to the broker.

* :mod:`.backoff` - run a step forever with capped exponential back-off;
* :mod:`.batch` - a quorum queue consumed in batches, acked after the commit, poison parked;
* :mod:`.stream` - a RabbitMQ stream read from an offset or a time, resumed after the last one read;
* :mod:`.publishing` - publish a batch, then read the broker's confirms once (relay, stream publishers).

Only :mod:`.backoff` is imported here: the relay process runs real threads and must not load
eventlet, which :mod:`.batch` and :mod:`.stream` need.

One event at a time from a nameko service is ``reliable_handler``
(:mod:`upgestao_kernel.nameko_ext.entrypoints`): retry queues, then parking.
"""

from .backoff import Backoff, BackoffLoop, GreenStop, Stop, run_forever

__all__ = ["Backoff", "BackoffLoop", "GreenStop", "Stop", "run_forever"]
