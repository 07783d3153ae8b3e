"""``python -m deploy.batch``: run one runner of an inference job (its share of the input).

Started by the local runtime (one process per ``parallelism``) and, in a cluster, by each
pod of the job's Indexed Job (the shard is ``$JOB_COMPLETION_INDEX`` there). The job
document comes as ``--job JSON``; the bearer token for the gateway from ``$MLGATE_TOKEN``
or the file ``$MLGATE_TOKEN_FILE`` (never a command-line argument); buckets' endpoints
from the usual configuration (``--config``, ``MLGATE_*``).

Exit status: 0 when the share is done, 2 when the job must stop (the reason is the last
stdout line), 1 when the runner itself failed (the caller may start it again).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson
import uvloop

from deploy.batch.caller import JobAbort, ModelCaller
from deploy.batch.events import OUTCOME_DONE, OUTCOME_FAILED, End, Report, encode
from deploy.batch.locations import Endpoints, open_place
from deploy.batch.runner import Runner, RunnerConfig
from deploy.config import ConfigError, Settings, load_settings
from deploy.control.job_plan import parse_location
from deploy.control.jobs import JOB_PREDICTORS, InferenceJob, parse_job
from storage import StorageError

log = logging.getLogger("mlgate.batch")
EXIT_DONE, EXIT_CRASHED, EXIT_FAILED = 0, 1, 2
TOKEN_ENV = "MLGATE_TOKEN"
TOKEN_FILE_ENV = "MLGATE_TOKEN_FILE"
SHARD_ENV = "JOB_COMPLETION_INDEX"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m deploy.batch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--job", required=True, help="the InferenceJob document (JSON)")
    p.add_argument("--gateway", help="the gateway's URL (default: batch.gateway_url)")
    p.add_argument("--shard", type=int, default=None,
                   help=f"this runner's index (default: ${SHARD_ENV} or 0)")
    p.add_argument("--retry-errors", action="store_true",
                   help="re-run only the rows listed in _errors/")
    p.add_argument("--config", help="mlgate.yaml: where the buckets are")
    return p.parse_args(argv)


def token(settings: Settings) -> str | None:
    path = os.environ.get(TOKEN_FILE_ENV) or settings.batch.token_file
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(TOKEN_ENV) or None


async def run(job: InferenceJob, settings: Settings, gateway: str, shard: int,
              retry_errors: bool) -> End:
    spec = job.spec
    endpoints = Endpoints.from_settings(settings)
    source = parse_location(spec.input)
    target = parse_location(spec.output).as_folder()
    config = RunnerConfig(
        job_id=job.id, format=spec.format, batch_size=spec.batch_size,
        concurrency=spec.concurrency, max_error_rate=spec.max_error_rate,
        name_prefix=source.name_prefix, shard=shard, shards=spec.parallelism,
        retry_errors=retry_errors, drop_columns=spec.drop_columns,
        read_ahead_bytes=settings.batch.read_ahead_bytes,
        progress_interval=settings.batch.progress_interval)
    source_place, target_place = open_place(source, endpoints), open_place(target, endpoints)

    def report(event: Report) -> None:
        sys.stdout.buffer.write(encode(event))
        sys.stdout.buffer.flush()

    try:
        async with ModelCaller(gateway, job.deployment_id, job.id, token(settings),
                               spec.concurrency, spec.retries,
                               settings.batch.call_timeout) as caller:
            counts = await Runner(config, source_place, target_place, caller, report).run()
    except (JobAbort, StorageError) as exc:  # a bucket still failing after the retries
        return End(OUTCOME_FAILED, str(exc))
    finally:
        await source_place.close()
        await target_place.close()
    log.info("%s shard %d/%d: %s", job.id, shard, spec.parallelism, counts)
    return End(OUTCOME_DONE)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config)
        doc = orjson.loads(args.job)
        job = parse_job(doc, lambda _name: JOB_PREDICTORS[0])  # checked by the API
    except (ConfigError, ValueError) as exc:
        print(f"mlgate batch: {exc}", file=sys.stderr)
        return EXIT_CRASHED
    shard = args.shard if args.shard is not None else int(os.environ.get(SHARD_ENV, "0"))
    gateway = args.gateway or settings.batch.gateway_url
    if not gateway:
        print("mlgate batch: no gateway URL: --gateway or batch.gateway_url", file=sys.stderr)
        return EXIT_CRASHED
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        end = runner.run(run(job, settings, gateway, shard, args.retry_errors))
    sys.stdout.buffer.write(encode(end))
    sys.stdout.buffer.flush()
    if end.outcome == OUTCOME_FAILED:
        log.error("%s shard %d: %s", job.id, shard, end.reason)
        return EXIT_FAILED
    return EXIT_DONE


if __name__ == "__main__":
    sys.exit(main())
