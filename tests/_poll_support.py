"""A moto server for the ``batchlens poll`` tests: started on a free 127.0.0.1 port, stopped afterwards.

moto's SQS backend recomputes every queue attribute (walking all messages, with a slow clock) for each message it
sends or hands out, which makes a 5,000-message queue cost seconds per ReceiveMessage. :func:`speed_up_moto_sqs`
swaps in the same computations done directly (``time.time()`` for moto's ``unix_time()``, one clock read per
scan, the queue's own retention period for the per-message retention check) and skips the message counts while
SendMessage reads the queue's attributes (it only looks at ``ContentBasedDeduplication``), so the server behaves
the same, only faster. The server runs in-process
(``ThreadedMotoServer``), which is what makes the patch reach it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def _fast_unix_time(dt: Any = None) -> float:
    if dt is None:
        return time.time()
    from moto.core.utils import utcfromtimestamp

    delta = dt - utcfromtimestamp(0)
    return float(delta.days * 86400 + delta.seconds + delta.microseconds / 1e6)


def _fast_unix_time_millis(dt: Any = None) -> float:
    return _fast_unix_time(dt) * 1000.0


_SENDING = threading.local()


def speed_up_moto_sqs() -> None:
    """Make moto's SQS backend fast enough for thousands of messages (same results, no O(n) work per message)."""
    import moto.sqs.models as sqs_models

    if getattr(sqs_models, "_batchlens_fast", False):
        return
    sqs_models._batchlens_fast = True  # type: ignore[attr-defined]
    original_send = sqs_models.SQSBackend.send_message

    def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        _SENDING.active = True
        try:
            return original_send(self, *args, **kwargs)
        finally:
            _SENDING.active = False

    sqs_models.SQSBackend.send_message = send_message  # type: ignore[method-assign]

    sqs_models.unix_time = _fast_unix_time  # type: ignore[attr-defined]
    sqs_models.unix_time_millis = _fast_unix_time_millis  # type: ignore[attr-defined]

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        queue = self.get_queue(queue_name)
        retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
        return bool(retain_until > time.time())

    sqs_models.SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )
    # the same predicates as moto's Message.visible / Message.delayed, with one clock read per scan
    queue = sqs_models.Queue
    queue.messages = property(  # type: ignore[assignment]
        lambda self: _scan(self, lambda now, m: now > m.visible_at and not now < m.delayed_until)
    )
    queue.approximate_number_of_messages = property(  # type: ignore[assignment]
        lambda self: len(_scan(self, lambda now, m: now > m.visible_at and not now < m.delayed_until))
    )
    queue.approximate_number_of_messages_not_visible = property(  # type: ignore[assignment]
        lambda self: len(_scan(self, lambda now, m: not now > m.visible_at))
    )
    queue.approximate_number_of_messages_delayed = property(  # type: ignore[assignment]
        lambda self: len(_scan(self, lambda now, m: now < m.delayed_until))
    )


def _scan(queue: Any, keep: Any) -> list[Any]:
    if getattr(_SENDING, "active", False):
        return []  # SendMessage reads no count; see the module docstring
    now = time.time() * 1000.0
    return [message for message in queue._messages if keep(now, message)]


def seed_queue(queue_url: str, bodies: list[str]) -> None:
    """Put messages straight into the in-process moto backend (test set-up only: ten times faster than HTTP)."""
    from moto.sqs.models import sqs_backends

    account, name = queue_url.rstrip("/").split("/")[-2:]
    backend = sqs_backends[account][DUMMY_ENV["AWS_DEFAULT_REGION"]]
    for body in bodies:
        backend.send_message(name, body)


@contextmanager
def moto_server() -> Iterator[str]:
    """Run moto's server on a free 127.0.0.1 port with dummy credentials in the environment; yield its URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    speed_up_moto_sqs()
    saved = {name: os.environ.get(name) for name in DUMMY_ENV}
    os.environ.update(DUMMY_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
