"""Torch thread choice on CPU: the usable CPUs (affinity, cgroup quota), or $PINEMBED_THREADS."""

import os

import torch

from pinembed.embedders.device import cpu_count, set_cpu_threads


def test_cpu_count_is_within_the_affinity_mask():
    assert 1 <= cpu_count() <= len(os.sched_getaffinity(0))


def test_threads_follow_the_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("PINEMBED_THREADS", "1")
        assert set_cpu_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.delenv("PINEMBED_THREADS")
        assert set_cpu_threads() == cpu_count() == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
