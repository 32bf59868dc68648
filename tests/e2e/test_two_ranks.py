"""Two real processes joined over gloo, as torchrun joins them, without training anything: an error
on one rank reaches both, nobody hangs, and rank 0 decides for both."""

import datetime
import json
import time

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

SCENARIO_TIMEOUT_S = 60  # a hang would end in the collective's own timeout, far above what a pass takes


def _both_ranks(rank: int, init_file: str, out_dir: str) -> None:
    from evaluation import runner
    from evaluation.distributed import RankFailed, World

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=SCENARIO_TIMEOUT_S))
    world, seen = World(rank=rank, size=2), {}
    started = time.perf_counter()

    # 1. An exception inside a shared block on rank 1 only (out of memory while training references).
    try:
        with world.together():
            if rank == 1:
                raise RuntimeError("CUDA out of memory")
        seen["together"] = "no error"
    except RankFailed as e:
        seen["together"] = str(e)

    # 2. A leaderboard's methods in turn: rank 1's run of "a" fails outside the method (scoring
    #    runs out of memory). Both ranks fail "a" and gather "b"'s runs together, never a mix.
    def run_method(make, sandbox, run_seed):
        if make() == "a" and rank == 1:
            raise MemoryError("scoring ran out of memory")
        return runner.Run(f"{make()}:{run_seed}", 1.0, [{"ran on rank": rank}])  # the method's round_log

    runner.run_method = run_method
    seen["methods"] = {}
    for name in ("a", "b"):
        try:
            runs = runner.run_all(lambda n=name: n, name, sandbox=None, num_models=4, world=world, progress=False)
            seen["methods"][name] = runs.scores
            seen["round_log"] = runs.logs
        except runner.MethodFailed as e:
            seen["methods"][name] = f"failed: {e}"

    # 3. --resume: a decision rank 0 makes is every rank's, whatever each would decide alone.
    seen["decision"] = world.from_main(lambda: f"decided on rank {rank}")
    seen["seconds"] = time.perf_counter() - started
    with open(f"{out_dir}/rank{rank}.json", "w") as f:
        json.dump(seen, f)
    dist.destroy_process_group()


@pytest.mark.slow
def test_an_error_on_one_rank_reaches_both_without_a_hang_and_rank_0_decides(tmp_path):
    mp.spawn(_both_ranks, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for seen in ranks:
        assert seen["together"] == "rank 1: RuntimeError: CUDA out of memory"
        assert seen["methods"]["a"] == "failed: run 1: MemoryError: scoring ran out of memory"
        assert seen["methods"]["b"] == ["b:0", "b:1", "b:2", "b:3"]
        # each run's log travels back from the rank that ran it
        assert seen["round_log"] == [[{"ran on rank": 0}], [{"ran on rank": 1}], [{"ran on rank": 0}],
                                     [{"ran on rank": 1}]]
        assert seen["decision"] == "decided on rank 0"
        assert seen["seconds"] < SCENARIO_TIMEOUT_S / 2
