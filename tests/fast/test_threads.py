"""Tests for numpyvae/fast/threads.py: when a second core is used, BLAS pinned
and restored, and the helper thread remade in a forked child."""

import pytest

from numpyvae.fast import threads


def test_no_second_core_without_threadpoolctl(monkeypatch):
    monkeypatch.setattr(threads, "threadpoolctl", lambda: None)
    assert not threads.two_cores()


def test_no_second_core_when_blas_is_held_to_one_thread():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if threads.os.cpu_count() < 2:
        pytest.skip("one core")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        assert threads.two_cores()
        with threadpoolctl.threadpool_limits(1, user_api="blas"):  # a one-thread sweep run
            assert not threads.two_cores()


def test_one_blas_thread_pins_and_restores():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [d["num_threads"] for d in threadpoolctl.threadpool_info()
                if d["user_api"] == "blas"]
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        with threads.one_blas_thread(True):
            assert set(blas_threads()) == {1}
        assert blas_threads() == before
        with threads.one_blas_thread(False):
            assert blas_threads() == before


def test_the_helper_is_one_thread_per_process(monkeypatch):
    helper = threads.helper()
    assert threads.helper() is helper
    assert helper.submit(lambda: 41 + 1).result() == 42
    pid = threads.os.getpid()
    monkeypatch.setattr(threads.os, "getpid", lambda: pid + 1)  # as in a forked child
    child = threads.helper()
    assert child is not helper and child.submit(lambda: 2).result() == 2
