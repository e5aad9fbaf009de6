"""How many Gradio messages of each kind a job meets: ours and gpt4free's, same server.

    .venv/bin/python -m bench.count_messages [--jobs 300] [--concurrency 100]
                                             [--g4f-python /tmp/g4f/bin/python]

Starts the real Gradio server (``bench/gradio_space.py``), runs ``--jobs`` ``flux-dev`` jobs
through the Engine at ``--concurrency``, counting the messages ``GradioStream`` handles, then
the same through gpt4free 8.8.6's ``BlackForestLabs_Flux1Dev`` (its ``json.loads`` counted,
in its own interpreter). A job's CPU is mostly a cost per message (socket, event loop,
parsing), and a Space sends each waiting job its place whenever the queue moves: the number of
a client's jobs in the Space's queue at once decides how many messages each meets. The
counting itself costs CPU: these runs are not CPU figures.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
from typing import Any

from bench._fakes import fake_process
from bench.engine import GRADIO_PYTHON, ROOT, TOKEN, measure
from imagine import gradio
from imagine.engine import Engine
from imagine.settings import Settings

G4F_COUNTER = """
import asyncio, collections, json, sys
sys.path.insert(0, sys.argv[3])
import reference_g4f as R
import g4f.Provider.hf_space.BlackForestLabs_Flux1Dev  # noqa: F401
module = sys.modules["g4f.Provider.hf_space.BlackForestLabs_Flux1Dev"]
counts = collections.Counter()
loads = json.loads
class Counting:
    JSONDecodeError = json.JSONDecodeError
    @staticmethod
    def loads(text, *args, **kwargs):
        value = loads(text, *args, **kwargs)
        if isinstance(value, dict):
            counts[value.get("msg")] += 1
        return value
module.json = Counting
R.BlackForestLabs_Flux1Dev.url = sys.argv[1]
concurrency, jobs = (int(v) for v in sys.argv[2].split(","))
row = asyncio.run(R.measure(concurrency, jobs))
print(json.dumps({"jobs": jobs + min(concurrency, 20), "counts": counts, **row}))
"""


def per_job(counts: dict[str, int], jobs: int) -> str:
    total = sum(counts.values()) / jobs
    kinds = ", ".join(f"{kind} {n / jobs:.1f}" for kind, n in sorted(counts.items()))
    return f"{total:.1f} messages per job ({kinds})"


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--space-delay", type=float, default=1.0)
    parser.add_argument("--gradio-python", default=GRADIO_PYTHON)
    parser.add_argument("--g4f-python")
    args = parser.parse_args(argv)
    counts: collections.Counter[str] = collections.Counter()
    handle = gradio.GradioStream.handle

    def counting(self: gradio.GradioStream, message: Any) -> Any:
        if isinstance(message, dict):
            counts[str(message.get("msg"))] += 1
        return handle(self, message)

    gradio.GradioStream.handle = counting  # type: ignore[method-assign]
    async with fake_process(
        "gradio_space",
        "--delay",
        str(args.space_delay),
        python=args.gradio_python,
        script=ROOT / "bench" / "gradio_space.py",
    ) as space:
        async with Engine(Settings.from_env(space["env"])) as engine:
            await measure(
                engine, "flux-dev", args.concurrency, args.jobs, shared=True, download=False,
                options={"api_key": TOKEN},
            )  # fmt: skip
        jobs = args.jobs + min(args.concurrency, 20)  # the warm-up's jobs are counted too
        print(f"Engine, {args.concurrency} concurrent: {per_job(counts, jobs)}")
        if args.g4f_python:
            process = await asyncio.create_subprocess_exec(
                args.g4f_python, "-c", G4F_COUNTER, space["env"]["FLUX_DEV_SPACE_URL"],
                f"{args.concurrency},{args.jobs}", str(ROOT / "bench"),
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await process.communicate()
            result = json.loads(out.decode().strip().splitlines()[-1])
            print(
                f"gpt4free 8.8.6, {args.concurrency} concurrent: "
                f"{per_job(result['counts'], result['jobs'])}"
            )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
