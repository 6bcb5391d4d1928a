"""The one seed rule of the stages that generate or edit images (sample, sample_reports, edit)."""

from cxrldm.sampling.generation import image_seeds


def test_image_k_gets_seed_times_a_million_plus_k():
    assert image_seeds(3, 4) == [3_000_000, 3_000_001, 3_000_002, 3_000_003]
    assert image_seeds(0, 0) == []
    # sample and sample_reports: one seed per image of the run
    for seed in (0, 1, 7, 123):
        assert image_seeds(seed, 50) == [seed * 1_000_000 + k for k in range(50)]


def test_an_offset_continues_the_run():
    # edit: each edit's films continue the count where the previous edit's stopped
    seed, sizes, k = 5, [3, 1, 4], 0
    for n in sizes:
        assert image_seeds(seed, n, offset=k) == [seed * 1_000_000 + k + i for i in range(n)]
        k += n
    together = [s for n, offset in zip(sizes, (0, 3, 4)) for s in image_seeds(seed, n, offset)]
    assert together == image_seeds(seed, sum(sizes))
