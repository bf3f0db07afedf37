"""The adaptive window of deletes in flight, fed answers directly: slow start, the
knee of a saturated server, a slow but healthy server, throttling, and its bounds."""

import random

import pytest

from chalicelib.cleanup.window import (
    INITIAL_DELETES_IN_FLIGHT,
    MAX_DELETES_IN_FLIGHT,
    TOLERANCE,
    DeleteWindow,
)


def rounds(window: DeleteWindow, count: int, latency, throttled=lambda size: False) -> list[int]:
    """``count`` rounds, each of ``size`` answers sent with ``size`` in flight (the first
    round ramps up from 1, as a run starts), answering after ``latency(in flight)``;
    the window after each."""
    sizes = []
    for i in range(count):
        size = window.size
        for n in range(1, size + 1):
            in_flight = n if i == 0 else size
            window.on_answer(latency(in_flight), throttled(in_flight), in_flight)
        sizes.append(window.size)
    return sizes


def test_a_slow_but_healthy_server_opens_the_window_to_its_maximum():
    window = DeleteWindow()
    sizes = rounds(window, 40, lambda size: 3.0)  # every answer 3 s late, however many
    doubling = [min(MAX_DELETES_IN_FLIGHT, INITIAL_DELETES_IN_FLIGHT * 2**n) for n in (1, 2)]
    assert sizes[:2] == doubling  # slow start
    settled = sizes[3:]
    assert max(set(settled), key=settled.count) == MAX_DELETES_IN_FLIGHT  # where it stays
    assert min(settled) >= MAX_DELETES_IN_FLIGHT * 3 // 4  # a probe narrower, and back


@pytest.mark.parametrize("capacity", [1, 3, 6, 12, 20])
def test_a_saturated_server_holds_the_window_at_its_capacity(capacity):
    # It serves ``capacity`` at once; beyond, answers wait their turn: latency grows
    # with the window, throughput does not. The window settles where throughput
    # peaks, and never stays far past it.
    window = DeleteWindow()
    sizes = rounds(window, 60, lambda size: 0.5 * max(1.0, size / capacity))
    settled = sizes[30:]
    stays = max(set(settled), key=settled.count)
    assert capacity <= stays <= capacity + max(1, capacity // 4)  # probes are a quarter apart
    assert max(settled) <= stays + max(1, stays // 4)  # a probe wider, and back


def test_it_climbs_a_gentle_slope_and_stops_where_throughput_falls():
    # Latency grows with the window but slower, up to 16 in flight, then faster (the
    # shape measured on SeaweedFS): throughput grows to 16 and falls beyond.
    rng = random.Random(5)

    def latency(size: int) -> float:
        base = 0.8 + 0.2 * size if size <= 16 else 4.0 * (size / 16) ** 2
        return base * rng.uniform(0.95, 1.05)

    window = DeleteWindow()
    sizes = rounds(window, 80, latency)
    assert 12 <= sorted(sizes[30:])[len(sizes[30:]) // 2] <= 20, sizes


def test_when_latency_climbs_where_it_is_the_window_shrinks():
    window = DeleteWindow()
    rounds(window, 10, lambda size: 1.0)
    assert window.size == MAX_DELETES_IN_FLIGHT
    rounds(window, 20, lambda size: 1.0 * max(1.0, size / 8) ** 2)  # the server got slower
    assert window.size < MAX_DELETES_IN_FLIGHT // 2


def test_throttling_halves_the_window_and_forgets_what_it_measured_above():
    window = DeleteWindow(16)
    rounds(window, 1, lambda size: 1.0)  # slow start: 32
    assert window.size == 32
    rounds(window, 1, lambda size: 1.0, throttled=lambda size: True)
    assert (window.size, window.slow_start) == (16, False)
    assert max(window.throughput()) == 16  # what it saw at 32 is gone
    assert window.best() == 16


def test_one_throttled_answer_in_a_round_is_enough():
    window = DeleteWindow(8)
    for i in range(8):
        window.on_answer(1.0, throttled=i == 5, in_flight=8)
    assert window.size == 4


def test_the_window_stays_within_its_bounds():
    window = DeleteWindow(2, minimum=1, maximum=6)
    rounds(window, 20, lambda size: 1.0, throttled=lambda size: True)
    assert window.size == 1  # never 0: the run always makes progress
    window = DeleteWindow(2, minimum=1, maximum=6)
    rounds(window, 20, lambda size: 1.0)
    assert window.size == 6
    with pytest.raises(ValueError, match="outside"):
        DeleteWindow(7, maximum=6)


def test_partial_batches_say_nothing_about_latency_but_their_throttling_counts():
    window = DeleteWindow(4)
    for _ in range(4):
        window.on_answer(9.0, throttled=False, in_flight=4, full_batch=False)
    assert window.throughput() == {} and window.size == 4  # no sample: holds
    for _ in range(4):
        window.on_answer(0.1, throttled=True, in_flight=4, full_batch=False)
    assert window.size == 2


def test_the_best_window_is_the_smallest_as_good_as_the_fastest():
    window = DeleteWindow(8, pinned=False)
    for n, latency in ((4, 1.0), (8, 1.9), (12, 3.0)):  # 4, 4.2 and 4.0 batches a second
        window._latencies[n].extend([latency] * 3)
    assert window.throughput()[8] == pytest.approx(8 / 1.9)
    assert 8 / 1.9 * (1 - TOLERANCE) <= 4.0  # 4 and 12 are as good as 8 within tolerance
    assert window.best() == 4


def test_a_pinned_window_never_moves():
    window = DeleteWindow(8, pinned=True)
    rounds(window, 5, lambda size: 1.0, throttled=lambda size: True)
    rounds(window, 5, lambda size: 0.1)
    assert window.size == 8
