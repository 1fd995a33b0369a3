"""The benchmark's timing: torch.utils.benchmark's Timer per measurement, rounds alternating
between the measured callables, best round kept."""
import time

from tools.analysis_tools.analysis import best_times


def test_best_times_alternates_rounds_and_keeps_the_best():
    calls = []

    def runner(name, seconds):
        def fn():
            calls.append(name)
            time.sleep(seconds)
        return fn

    runners = [('fast', 'fp32', 'fwd', runner('fast', 0.002)),
               ('slow', 'fp32', 'fwd', runner('slow', 0.006))]
    best = best_times(runners, ['fp32'], iters=3, warmup=1, repeats=2, modes=('fwd', ))
    assert set(best) == {('fast', 'fp32', 'fwd'), ('slow', 'fp32', 'fwd')}
    # seconds for 3 calls: at least their 3 sleeps, and each runner timed on its own
    assert 0.006 <= best['fast', 'fp32', 'fwd'] < best['slow', 'fp32', 'fwd']
    assert best['slow', 'fp32', 'fwd'] >= 0.018
    # warm-up of each first, then the rounds alternate: fast, slow, fast, slow
    blocks = [name for i, name in enumerate(calls) if i == 0 or calls[i - 1] != name]
    assert blocks == ['fast', 'slow', 'fast', 'slow', 'fast', 'slow']
    assert calls.count('fast') == calls.count('slow') >= 1 + 2 * 3
