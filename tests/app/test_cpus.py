"""The app's thread count: the fewest of the CPUs the process may run on, its cgroup quota (v2 and v1, on
fake cgroup folders) and OMP_NUM_THREADS."""

import os

import pytest

from cxrldm.app import cpus
from cxrldm.app.cpus import cgroup_cpus, usable_cpus


def tree(root, files: dict):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture(autouse=True)
def eight_cpus(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)


@pytest.mark.parametrize(
    "files,membership,expected",
    [
        ({"cpu.max": "max 100000\n"}, "0::/\n", 8),  # v2, no quota
        ({"cpu.max": "200000 100000\n"}, "0::/\n", 2),  # v2: 2 CPUs
        ({"cpu.max": "150000 100000\n"}, "0::/\n", 1),  # 1.5 CPUs: one thread
        ({"cpu.max": "50000 100000\n"}, "0::/\n", 1),  # half a CPU: still one
        ({"cpu.max": "300000 100000\n", "job/cpu.max": "max 100000\n"}, "0::/job\n", 3),  # the parent's quota
        (
            {"cpu.max": "max 100000\n", "a/cpu.max": "400000 100000\n", "a/b/cpu.max": "600000 100000\n"},
            "0::/a/b\n",
            4,
        ),  # the tightest above
        (
            {"cpu,cpuacct/cpu.cfs_quota_us": "300000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
            "4:memory:/x\n2:cpu,cpuacct:/\n",
            3,
        ),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, "1:cpu:/\n", 8),  # v1, no quota
        (
            {
                "cpu/docker/cpu.cfs_quota_us": "100000\n",
                "cpu/docker/cpu.cfs_period_us": "50000\n",
                "cpu/cpu.cfs_quota_us": "-1\n",
                "cpu/cpu.cfs_period_us": "100000\n",
            },
            "1:cpu:/docker\n",
            2,
        ),
        ({}, "0::/\n", 8),  # no cgroup files at all
    ],
)
def test_the_cgroup_quota_bounds_the_threads(tmp_path, files, membership, expected):
    root = tree(tmp_path / "cgroup", files)
    (tmp_path / "self_cgroup").write_text(membership)
    assert usable_cpus(root, tmp_path / "self_cgroup", environ={}) == expected


def test_without_a_membership_file_the_mount_roots_are_read(tmp_path):
    root = tree(tmp_path, {"cpu.max": "250000 100000\n"})
    assert cgroup_cpus(root, tmp_path / "missing") == 2.5
    assert usable_cpus(root, tmp_path / "missing", environ={}) == 2


@pytest.mark.parametrize("value,expected", [("1", 1), ("3", 3), ("16", 4), ("", 4), ("0", 4), ("many", 4)])
def test_omp_num_threads_where_set_and_sensible(tmp_path, value, expected):
    root = tree(tmp_path / "cgroup", {"cpu.max": "400000 100000\n"})
    (tmp_path / "self_cgroup").write_text("0::/\n")
    assert usable_cpus(root, tmp_path / "self_cgroup", environ={"OMP_NUM_THREADS": value}) == expected


def test_the_affinity_bounds_the_threads(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    (tmp_path / "self_cgroup").write_text("0::/\n")
    assert usable_cpus(tmp_path, tmp_path / "self_cgroup", environ={"OMP_NUM_THREADS": "8"}) == 2


def stat_file(path, ticks: dict[int, tuple[int, int]]) -> None:
    """A /proc/stat with per-CPU lines: {cpu: (busy user ticks, idle ticks)}."""
    lines = ["cpu  1 0 0 1 0 0 0 0 0 0"]
    lines += [f"cpu{n} {busy} 0 0 {idle} 0 0 0 0 0 0" for n, (busy, idle) in ticks.items()]
    path.write_text("\n".join(lines + ["intr 0", "ctxt 0"]) + "\n")


def test_idle_cpus_count_the_allowed_cpus_idle_between_two_readings(tmp_path):
    stat = tmp_path / "stat"
    stat_file(stat, {0: (100, 100), 1: (100, 100), 2: (100, 100)})
    before = cpus.cpu_times(stat)
    stat_file(stat, {0: (200, 100), 1: (150, 150), 2: (100, 200)})  # busy, half, idle
    after = cpus.cpu_times(stat)
    assert cpus.idle_cpus(before, after, {0, 1, 2}) == pytest.approx(1.5)
    assert cpus.idle_cpus(before, after, {0, 2}) == pytest.approx(1.0)  # only the process's own CPUs count


@pytest.mark.parametrize(("others", "limit", "expected"), [(0, 2, 2), (1, 2, 1), (2, 2, 1), (0, 1, 1)])
def test_a_job_gets_the_cpus_other_work_leaves_idle(others, limit, expected, monkeypatch):
    """Two CPUs, `others` of them kept busy by other processes while the job starts."""
    readings = iter([{0: (0, 0), 1: (0, 0)}, {n: (0 if n < others else 100, 100) for n in (0, 1)}])
    monkeypatch.setattr(cpus, "cpu_times", lambda stat=None: next(readings))
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(cpus.time, "sleep", lambda s: None)
    assert cpus.threads_now(limit) == expected


def test_without_proc_stat_a_job_gets_the_limit(tmp_path):
    assert cpus.threads_now(2, interval=0, stat=tmp_path / "missing") == 2


def test_each_job_runs_with_the_threads_chosen_for_it(tmp_path, monkeypatch):
    """The job thread sets torch's count itself (OpenMP keeps one per thread) and the job's state says it."""
    import torch

    from cxrldm.app import jobs as jobs_module

    monkeypatch.setattr(jobs_module, "threads_now", lambda limit: 1)
    monkeypatch.setattr(jobs_module.Jobs, "models", lambda self: type("M", (), {"unet": torch.nn.Identity()})())
    jobs = jobs_module.Jobs(tmp_path / "models", tmp_path / "work")
    seen = jobs.submit("generate", lambda m: 1, lambda m, folder: {"threads": torch.get_num_threads()}, {})
    jobs.executor.shutdown(wait=True)
    job = jobs.get(seen["id"])
    assert job["state"] == "done" and job["threads"] == 1 and job["result"] == {"threads": 1}
    fixed = jobs_module.Jobs(tmp_path / "models", tmp_path / "work2", threads=2)
    seen = fixed.submit("generate", lambda m: 1, lambda m, folder: {"threads": torch.get_num_threads()}, {})
    fixed.executor.shutdown(wait=True)
    assert fixed.get(seen["id"])["result"] == {"threads": 2} and fixed.get(seen["id"])["threads"] == 2
