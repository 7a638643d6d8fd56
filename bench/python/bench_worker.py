"""The Python side of steward's benchmarks: the same workflows as
bench/src/main.rs, served by the official Python SDK (`temporalio`).

    bench_worker.py worker --address A --queue Q [--unsandboxed] [--grpc-compression none]
    bench_worker.py replay FILE [--times 3]

The worker uses the SDK's defaults, which are the Rust SDK's too: 100
workflow task slots, 100 activity slots, a 1,000-workflow cache. The
workflow sandbox is on unless --unsandboxed; the client gzips its gRPC
messages (the SDK's default) unless --grpc-compression none.
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Replayer, Worker
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.client import WorkflowHistory
from temporalio.service import GrpcCompression

TIMEOUT = timedelta(seconds=30)


@activity.defn(name="noop")
async def noop(x: int) -> int:
    return x


@workflow.defn(name="BenchOne")
class BenchOne:
    @workflow.run
    async def run(self, x: int) -> int:
        return await workflow.execute_activity(noop, x, start_to_close_timeout=TIMEOUT)


@workflow.defn(name="BenchSeq")
class BenchSeq:
    @workflow.run
    async def run(self, n: int) -> int:
        total = 0
        for i in range(n):
            total += await workflow.execute_activity(noop, i, start_to_close_timeout=TIMEOUT)
        return total


@workflow.defn(name="BenchWait")
class BenchWait:
    def __init__(self) -> None:
        self.released = False

    @workflow.run
    async def run(self, x: int) -> int:
        await workflow.wait_condition(lambda: self.released)
        return 0

    @workflow.signal(name="release")
    def release(self, x: int) -> None:
        self.released = True

    @workflow.query(name="ready")
    def ready(self) -> bool:
        return True


WORKFLOWS = [BenchOne, BenchSeq, BenchWait]


async def serve(address: str, queue: str, unsandboxed: bool, compression: str) -> None:
    client = await Client.connect(
        address,
        grpc_compression=GrpcCompression.GZIP if compression == "gzip" else GrpcCompression.NONE,
    )
    kwargs = {}
    if unsandboxed:
        kwargs["workflow_runner"] = UnsandboxedWorkflowRunner()
    worker = Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=[noop], **kwargs)
    print(f"python bench worker polling {queue}", file=sys.stderr, flush=True)
    await worker.run()


async def replay(path: str, times: int) -> None:
    with open(path) as f:
        text = f.read()
    events = len(json.loads(text)["events"])
    seconds = []
    for _ in range(max(1, times)):
        history = WorkflowHistory.from_json("bench-long", text)
        replayer = Replayer(workflows=[BenchSeq])
        started = time.perf_counter()
        await replayer.replay_workflow(history)
        seconds.append(time.perf_counter() - started)
    print(json.dumps({"events": events, "seconds": statistics.median(seconds)}))


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker")
    w.add_argument("--address", default="127.0.0.1:7233")
    w.add_argument("--queue", default="bench")
    w.add_argument("--unsandboxed", action="store_true")
    w.add_argument("--grpc-compression", choices=["gzip", "none"], default="gzip")
    r = sub.add_parser("replay")
    r.add_argument("file")
    r.add_argument("--times", type=int, default=3)
    args = parser.parse_args()
    if args.command == "worker":
        asyncio.run(serve(args.address, args.queue, args.unsandboxed, args.grpc_compression))
    else:
        asyncio.run(replay(args.file, args.times))


if __name__ == "__main__":
    main()
