"""The app's thread count: the fewest of the CPUs the process may run on, its cgroup quota (v2 and v1, on
fake cgroup folders) and OMP_NUM_THREADS."""

import os

import pytest

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
