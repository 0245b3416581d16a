"""The consumer toolkit: every loop that reads from or publishes to the broker.

* :mod:`.backoff` - run a step forever with capped exponential back-off;
* :mod:`.batch` - a quorum queue consumed in batches, acked after the commit, poison parked;
* :mod:`.stream` - a RabbitMQ stream read from an offset or a time, resumed after the last one read.

One event at a time from a nameko service is ``reliable_handler``
(:mod:`upgestao_kernel.nameko_ext.entrypoints`): retry queues, then parking.
"""

from .backoff import Backoff, BackoffLoop, GreenStop, Stop, run_forever

__all__ = ["Backoff", "BackoffLoop", "GreenStop", "Stop", "run_forever"]
