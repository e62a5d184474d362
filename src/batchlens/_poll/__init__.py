"""``batchlens poll``: run a Lambda handler locally against a real SQS queue, Kinesis stream or DynamoDB stream,
with the semantics of Lambda's event source mapping.

- ``_args``: the command's arguments and their validation (standard library only: imported at CLI start-up);
- ``_runner``: the loop (batches, Ctrl-C, ``--max-batches`` / ``--until-empty``, metrics endpoint);
- ``_sqs``, ``_streams`` (with ``_stream_apis``): the event sources;
- ``_events``: the records Lambda builds; ``_response``: reading a partial-batch response;
- ``_context``: the Lambda context and the time-bounded call; ``_summary``: the per-batch line.

boto3 is imported only when the command runs (``pip install 'batchlens[local]'``).
"""
