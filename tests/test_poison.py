"""Poison exceptions and malformed input (issue 12.4): each fails only what it must, never the process.

- an exception whose ``__str__`` or ``__repr__`` raises fails only its record, in every processing mode;
- a Kafka ``records`` partition that is not a list is a clear error naming it (nothing processed, nothing lost);
- a Lambda context whose remaining time is NaN or infinite turns the deadline guard off, without crashing;
- ``batchlens run`` on undecodable, absurdly deep or absurdly long-numbered JSON exits 2 with one line;
- with ``max_workers > 1`` (and async), ``success_messages`` come back in input order.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

import batchlens as bl
from batchlens import cli, testing

OFF = bl.Telemetry.disabled()


class PoisonStr(Exception):
    """An exception whose message cannot be rendered."""

    def __str__(self) -> str:
        raise RuntimeError("str() of this exception is broken")


class PoisonRepr(Exception):
    """An exception whose repr cannot be rendered."""

    def __repr__(self) -> str:
        raise RuntimeError("repr() of this exception is broken")


class PoisonBoth(Exception):
    """An exception that can be rendered neither way."""

    def __str__(self) -> str:
        raise RuntimeError("str() broken")

    def __repr__(self) -> str:
        raise RuntimeError("repr() broken")


POISONS = [PoisonStr, PoisonRepr, PoisonBoth]
MODES = ["sync", "threaded", "async"]


def _processor(mode: str, telemetry: bl.Telemetry, logger: logging.Logger | None = None) -> Any:
    if mode == "async":
        return bl.AsyncBatchProcessor(bl.EventType.SQS, telemetry=telemetry, logger=logger)
    return bl.BatchProcessor(
        bl.EventType.SQS, telemetry=telemetry, logger=logger, max_workers=4 if mode == "threaded" else 1
    )


def _run(mode: str, event: dict[str, Any], handler: Callable[[Any], Any], processor: Any, context: Any = None) -> Any:
    if mode == "async":

        async def async_handler(record: Any) -> Any:
            await asyncio.sleep(0)
            return handler(record)

        return bl.async_process_partial_response(event, async_handler, processor, context)
    return bl.process_partial_response(event, handler, processor, context)


def _poisoning(poison: type[Exception]) -> Callable[[Any], Any]:
    def handler(record: Any) -> str:
        if record.body == "poison":
            raise poison("never shown")
        return record.body

    return handler


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A Powertools-style ``logger=``, writing (tracebacks included) to a string."""
    log = logging.getLogger("test_poison.records")
    handler = logging.StreamHandler(io.StringIO())
    log.addHandler(handler)
    log.propagate = False
    yield log
    log.removeHandler(handler)
    log.propagate = True


@pytest.mark.parametrize("poison", POISONS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("telemetry_on", [False, True], ids=["telemetry-off", "telemetry-on"])
def test_an_unprintable_exception_fails_only_its_record(
    poison: type[Exception], mode: str, telemetry_on: bool, telemetry: bl.Telemetry, logger: logging.Logger
) -> None:
    """A handler exception whose __str__/__repr__ raises fails its record alone; the placeholder names the class."""
    event = testing.sqs_event(["ok", "poison", "also ok"], seed=3)
    processor = _processor(mode, telemetry if telemetry_on else OFF, logger)

    response = _run(mode, event, _poisoning(poison), processor)

    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
    assert [r["body"] for r in processor.success_messages] == ["ok", "also ok"]
    assert [type(info[1]) for info in processor.exceptions] == [poison]


@pytest.mark.parametrize("poison", POISONS)
@pytest.mark.parametrize("mode", MODES)
def test_the_processed_message_of_an_unprintable_exception_names_its_class(poison: type[Exception], mode: str) -> None:
    """The failure tuple's message is a placeholder naming the class when the exception cannot say more."""
    event = testing.sqs_event(["ok", "poison"], seed=4)
    processor = _processor(mode, OFF)
    handler = _poisoning(poison)

    with processor(event["Records"], handler):
        if mode == "async":

            async def async_handler(record: Any) -> Any:
                return handler(record)

            processor.handler = async_handler
            entries = processor.async_process()
        else:
            entries = processor.process()

    status, message, _ = entries[1]
    assert status == "fail"
    assert message.startswith(f"{poison}:")
    if poison is PoisonRepr:
        assert message == f"{poison}:never shown"  # str() works: Powertools' text, unchanged
    else:
        assert poison.__qualname__ in message.split(":", 1)[1]
        assert "never shown" not in message


@pytest.mark.parametrize("poison", [PoisonStr, PoisonBoth])
def test_an_unprintable_exception_is_still_recorded_on_its_span(
    poison: type[Exception], telemetry: bl.Telemetry, span_exporter: Any
) -> None:
    """With tracing on, the poisoned record's span ends in ERROR with its error.type; the other spans are fine."""
    event = testing.sqs_event(["ok", "poison"], seed=5)
    processor = _processor("sync", telemetry)

    _run("sync", event, _poisoning(poison), processor)

    spans = [span for span in span_exporter.get_finished_spans() if span.attributes.get("messaging.message.id")]
    by_id = {span.attributes["messaging.message.id"]: span for span in spans}
    failed = by_id[event["Records"][1]["messageId"]]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"].endswith(poison.__qualname__)
    assert by_id[event["Records"][0]["messageId"]].status.status_code is not StatusCode.ERROR


def test_a_whole_batch_of_unprintable_exceptions_raises_a_printable_batch_error() -> None:
    """Every record poisoned: BatchProcessingError as usual, and its text can be rendered."""
    event = testing.sqs_event(["poison", "poison"], seed=6)
    processor = _processor("sync", OFF)

    with pytest.raises(bl.BatchProcessingError) as caught:
        _run("sync", event, _poisoning(PoisonBoth), processor)

    assert "All records failed processing" in str(caught.value)


# -- Kafka: a partition that is not a list ---------------------------------------------------------------------------
@pytest.mark.parametrize("bogus", [{"topic": "orders", "partition": 1, "offset": 5}, "not records", 42, None])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_kafka_partition_that_is_not_a_list_is_an_error_naming_it(bogus: Any, mode: str) -> None:
    """A malformed partition raises UnexpectedBatchTypeError naming it; no record is run or reported as done."""
    event = testing.kafka_event(count=2, seed=7, topic="orders")
    good_partition = next(iter(event["records"]))
    event["records"]["orders-1"] = bogus
    seen: list[Any] = []

    def handler(record: Any) -> None:
        seen.append(record)

    processor = (
        bl.AsyncBatchProcessor(bl.EventType.Kafka, telemetry=OFF)
        if mode == "async"
        else bl.BatchProcessor(bl.EventType.Kafka, telemetry=OFF)
    )
    with pytest.raises(bl.UnexpectedBatchTypeError) as caught:
        _run(mode, event, handler, processor)

    message = str(caught.value)
    assert "'orders-1'" in message
    assert type(bogus).__name__ in message
    assert good_partition not in message
    assert seen == []  # raised before any record ran: Lambda retries the whole batch, nothing is lost


def test_a_kafka_event_of_list_partitions_still_processes_every_record() -> None:
    """Well-formed partitions (several of them) are processed as before."""
    event = testing.kafka_event(count=4, partitions=2, seed=8)
    processor = bl.BatchProcessor(bl.EventType.Kafka, telemetry=OFF)

    response = bl.process_partial_response(event, lambda record: None, processor)

    assert response == {"batchItemFailures": []}
    assert len(processor.success_messages) == 4


# -- deadline guard: a clock that is not a finite number -------------------------------------------------------------
class OddClockContext:
    """A Lambda context whose clock returns ``value`` (NaN, or an infinity)."""

    function_name = "batch-handler"
    aws_request_id = "req-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:batch-handler"
    memory_limit_in_mb = 512

    def __init__(self, value: float) -> None:
        self.value = value

    def get_remaining_time_in_millis(self) -> float:
        return self.value


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("telemetry_on", [False, True], ids=["telemetry-off", "telemetry-on"])
def test_a_non_finite_remaining_time_turns_the_deadline_guard_off(
    value: float, mode: str, telemetry_on: bool, telemetry: bl.Telemetry
) -> None:
    """Remaining time NaN/±inf: every record is processed (no skip), and nothing crashes."""
    event = testing.sqs_event(["a", "b", "c"], seed=9)
    if mode == "async":
        processor: Any = bl.AsyncBatchProcessor(
            bl.EventType.SQS, telemetry=telemetry if telemetry_on else OFF, deadline_margin_ms=5_000
        )
    else:
        processor = bl.BatchProcessor(
            bl.EventType.SQS,
            telemetry=telemetry if telemetry_on else OFF,
            deadline_margin_ms=5_000,
            max_workers=3 if mode == "threaded" else 1,
        )

    response = _run(mode, event, lambda record: record.body, processor, OddClockContext(value))

    assert response == {"batchItemFailures": []}
    assert len(processor.success_messages) == 3


# -- success_messages order under concurrency ------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["threaded", "async"])
def test_success_messages_come_back_in_input_order_under_concurrency(mode: str) -> None:
    """Records finishing in reverse order still leave success_messages (and fail_messages) in input order."""
    bodies = ["s3", "f2", "s1", "f0", "s0"]
    event = testing.sqs_event(bodies, seed=10)

    def delay(record: Any) -> float:
        return int(record.body[1]) * 0.03  # later records finish first

    if mode == "async":
        processor: Any = bl.AsyncBatchProcessor(bl.EventType.SQS, telemetry=OFF)

        async def async_handler(record: Any) -> str:
            await asyncio.sleep(delay(record))
            if record.body.startswith("f"):
                raise ValueError(record.body)
            return str(record.body)

        bl.async_process_partial_response(event, async_handler, processor)
    else:
        processor = bl.BatchProcessor(bl.EventType.SQS, telemetry=OFF, max_workers=len(bodies))

        def handler(record: Any) -> str:
            time.sleep(delay(record))
            if record.body.startswith("f"):
                raise ValueError(record.body)
            return str(record.body)

        bl.process_partial_response(event, handler, processor)

    assert [record["body"] for record in processor.success_messages] == ["s3", "s1", "s0"]
    assert [record.body for record in processor.fail_messages] == ["f2", "f0"]
    assert [str(info[1]) for info in processor.exceptions] == ["f2", "f0"]


# -- batchlens run: input the JSON reader cannot take ----------------------------------------------------------------
HANDLER = "def handle(record):\n    return None\n"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary current directory holding a trivial handler module."""
    (tmp_path / "poison_cli_handlers.py").write_text(HANDLER, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    sys.modules.pop("poison_cli_handlers", None)


def _valid_event_text() -> str:
    return json.dumps(testing.sqs_event(["ok"], seed=11))


CLI_INPUTS = {
    "latin-1": (_valid_event_text().replace("ok", "caf\u00e9").encode("latin-1"), "not UTF-8"),
    "binary": (b"\xff\xfe\x00garbage", "not UTF-8"),
    "deep": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "deep-object": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
    "long-integer": (('{"Records": [], "n": ' + "7" * 5_000 + "}").encode(), "digits"),
}


@pytest.mark.parametrize("case", list(CLI_INPUTS))
@pytest.mark.parametrize("source", ["file", "stdin"])
def test_run_rejects_input_json_cannot_take_with_exit_2_and_one_line(
    case: str, source: str, workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Non-UTF-8 bytes, 100,000-deep nesting and a 5,000-digit integer: exit 2, one stderr line, no traceback."""
    content, fragment = CLI_INPUTS[case]
    if source == "file":
        path = workdir / "event.json"
        path.write_bytes(content)
        argument = str(path)
    else:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(content), encoding="utf-8"))
        argument = "-"

    code = cli.main(["run", argument, "--handler", "poison_cli_handlers:handle"])

    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2
    assert captured.out == ""
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("batchlens: error: ")
    assert fragment in lines[0]
    assert len(lines[0]) < 300


def test_run_kafka_event_with_a_malformed_partition_exits_2(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`run` on a Kafka event whose partition is not a list: exit 2 naming the partition (exit 1 is for batches)."""
    event = testing.kafka_event(count=1, seed=12, topic="orders")
    event["records"]["orders-9"] = {"offset": 1}
    path = workdir / "event.json"
    path.write_text(json.dumps(event), encoding="utf-8")

    code = cli.main(["run", str(path), "--handler", "poison_cli_handlers:handle"])

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1
    assert "orders-9" in err[0]
