"""Stage edit's choice of films, masks and seeds (cxrldm.sampling.editing.edit_runs and its helpers), without
models: edit_images is replaced by a stand-in that records what it was asked."""

import pandas as pd
import pytest
import torch

from cxrldm.sampling import editing
from cxrldm.sampling.editing import EditResult

SIZE = 32
EDITS = [
    {
        "name": "add_right",
        "prompt": "Right effusion.",
        "finding": "Pleural Effusion",
        "source": "normal",
        "mask": "right_lower",
        "side": "right",
    },
    {
        "name": "remove_heart",
        "prompt": "Normal heart.",
        "finding": "Cardiomegaly",
        "source": "Cardiomegaly",
        "mask": "heart",
        "keep": "right_lower",
    },
    {"name": "any_film", "prompt": "Anything.", "finding": "Edema", "source": "any", "mask": "whole"},
]


@pytest.fixture
def films():
    """Six test films (one per study, not in study order) and their labels."""
    table = pd.DataFrame(
        {
            "subject_id": [1, 2, 3, 4, 5, 6],
            "study_id": [60, 20, 50, 10, 40, 30],
            "path": [f"f{i}.png" for i in range(6)],
        }
    )
    labels = pd.DataFrame(
        {"No Finding": [1.0, 1.0, None, 1.0, 0.0, None], "Cardiomegaly": [None, 0.0, 1.0, -1.0, 1.0, 1.0]},
        index=pd.Index([60, 20, 50, 10, 40, 30], name="study_id"),
    )
    return table, labels, torch.rand(6, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


class Models:
    image_size = SIZE


def test_label_columns_are_no_finding_then_the_findings_and_sources():
    assert editing.label_columns(EDITS) == ["No Finding", "Cardiomegaly", "Edema", "Pleural Effusion"]
    assert editing.label_columns(EDITS[1:]) == ["Cardiomegaly", "Edema"]


def test_source_films_are_the_first_by_study_with_the_source(films):
    table, labels, _ = films
    assert editing.source_films(table, labels, "normal", 5).study_id.tolist() == [10, 20, 60]
    assert editing.source_films(table, labels, "Cardiomegaly", 2).study_id.tolist() == [30, 40]
    assert editing.source_films(table, labels, "any", 4).study_id.tolist() == [10, 20, 30, 40]


def test_edit_runs_choose_films_masks_and_the_stage_s_seeds(films, monkeypatch):
    table, labels, originals = films
    calls = []

    def stand_in(
        models, images, prompts, seeds, strength, guidance, steps, edit_masks, keep_masks, feather_px, batch_size
    ):
        calls.append((prompts, seeds, strength, guidance, steps, feather_px, batch_size))
        return EditResult(images + 1, images + 2, edit_masks)

    monkeypatch.setattr(editing, "edit_images", stand_in)
    runs = list(editing.edit_runs(Models(), table, labels, originals, EDITS, 3, 7, 0.6, 4.0, 12, 1.5, 2, "edit.edits"))
    assert [spec["name"] for spec, _ in runs] == ["add_right", "remove_heart", "any_film"]
    counts, k = [3, 3, 3], 0
    for (spec, run), n, call in zip(runs, counts, calls):
        assert run.films.study_id.tolist() == editing.source_films(table, labels, spec["source"], 3).study_id.tolist()
        assert torch.equal(run.before, originals[run.index]) and len(run.index) == n
        assert [table.path[i] for i in run.index.tolist()] == run.films.path.tolist()
        # the stage's seed rule: edit.seed * 1_000_000 + k + i, k counting the earlier edits' films
        assert run.seeds == [7 * 1_000_000 + k + i for i in range(n)] == call[1]
        k += n
        assert call[0] == [spec["prompt"]] * n and call[2:] == (0.6, 4.0, 12, 1.5, 2)
        assert torch.equal(run.edit_mask, editing.mask_from(spec["mask"], SIZE, SIZE, 1.0).expand(n, 1, SIZE, SIZE))
        assert torch.equal(run.keep_mask, editing.mask_from(spec.get("keep"), SIZE, SIZE, 0.0).expand(n, 1, SIZE, SIZE))
        assert torch.equal(run.result.edited, run.before + 1)
    assert runs[1][1].keep_mask.sum() > 0 and runs[0][1].keep_mask.sum() == 0


def test_an_edit_with_fewer_than_two_films_names_it(films, monkeypatch):
    table, labels, originals = films
    monkeypatch.setattr(editing, "edit_images", lambda *args: pytest.fail("nothing may be edited"))
    spec = {**EDITS[1], "source": "Edema"}
    labels = labels.assign(Edema=[1.0, None, None, None, None, None])
    with pytest.raises(
        ValueError, match=r"edit.edits remove_heart: 1 test films with source 'Edema'; an edit needs at least 2"
    ):
        list(editing.edit_runs(Models(), table, labels, originals, [spec], 3, 0, 0.5, 3.0, 10, 2.0, 4, "edit.edits"))


def test_edit_triples_interleave_original_edit_and_difference():
    before = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    edited = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(4))
    triples = editing.edit_triples(before, edited, 2)
    assert triples.shape == (6, 1, 4, 4)
    expected = [
        before[0],
        edited[0],
        editing.difference_map(edited, before)[0],
        before[1],
        edited[1],
        editing.difference_map(edited, before)[1],
    ]
    assert all(torch.equal(t, e) for t, e in zip(triples, expected))
