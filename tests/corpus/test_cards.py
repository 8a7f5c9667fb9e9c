import yaml

from vlir.corpus.cards import hub_split_name, write_card


def test_card_has_hub_header_tables_and_plots(vlir_output):
    path = write_card(vlir_output)
    text = path.read_text()
    assert text.startswith("---\n")
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["task_categories"][0] == "visual-question-answering"
    assert header["license"] == "cc-by-4.0"  # gqa only
    assert header["configs"] == [
        {"config_name": "gqa", "data_files": [{"split": "val", "path": "gqa/val/part-*.parquet"}]},
        {"config_name": "gqa_rejects", "data_files": [
            {"split": "val", "path": "rejects/gqa/val/rejects-*.parquet"}]}]
    assert "| gqa/val | 6 | 2 | 75% |" in text
    assert "| source/split | answer_correct |" in text and "| gqa/val | 2 |" in text
    # looks per chain of the fixture records: 1, 2, 3, 1, 2, 3
    assert "| gqa/val | 2.00 | 3 |" in text
    for png in ("records.png", "chains.png", "rejections.png"):
        assert (vlir_output / "card" / png).read_bytes().startswith(b"\x89PNG")
        assert f"(card/{png})" in text
    assert "$" not in text.split("## Loading")[0]  # every template field filled


def test_card_is_deterministic(vlir_output):
    a = write_card(vlir_output).read_bytes()
    pngs = {p.name: p.read_bytes() for p in (vlir_output / "card").iterdir()}
    assert write_card(vlir_output).read_bytes() == a
    assert {p.name: p.read_bytes() for p in (vlir_output / "card").iterdir()} == pngs


def test_hub_split_names():
    assert hub_split_name("random/train") == "random_train"
    assert hub_split_name("val") == "val"


def test_card_configs_load_exactly_accepted_and_rejected(vlir_output):
    """Each config of the card's header, loaded as the Hub would (its data_files globs under OUT),
    gives exactly the accepted records, or exactly the rejects, of that split."""
    from datasets import load_dataset

    header = yaml.safe_load(write_card(vlir_output).read_text().split("---\n")[1])
    got = {}
    for config in header["configs"]:
        files = {f["split"]: str(vlir_output / f["path"]) for f in config["data_files"]}
        ds = load_dataset("parquet", data_files=files, split="val")
        got[config["config_name"]] = sorted(set(ds["status"])), len(ds)
    assert got == {"gqa": (["accepted"], 6), "gqa_rejects": (["rejected"], 2)}


def test_every_advertised_config_loads_by_folder_and_name(tmp_path):
    """``load_dataset(OUT, config)`` (the Hub's own route: the card's configs) works for every config
    the card lists; a split with no rejects gets no empty shard and no ``_rejects`` config."""
    from datasets import load_dataset

    from tests.conftest import make_output

    out = make_output(tmp_path / "out", n=3, n_rejects=0)
    assert not (out / "rejects").exists()  # no empty shard written
    header = yaml.safe_load(write_card(out).read_text().split("---\n")[1])
    assert [c["config_name"] for c in header["configs"]] == ["gqa"]
    for config in header["configs"]:
        ds = load_dataset(str(out), config["config_name"], cache_dir=str(tmp_path / "hf"))
        assert ds["val"].num_rows == 3


def test_card_lists_only_splits_with_rows():
    from vlir.corpus.cards import hub_configs

    manifest = {"splits": {
        "gqa/train": {"source": "gqa", "split": "train", "accepted": 4, "rejected": 0},
        "gqa/val": {"source": "gqa", "split": "val", "accepted": 2, "rejected": 1},
        "vsr/val": {"source": "vsr", "split": "val", "accepted": 0, "rejected": 3}}}
    got = {c["config_name"]: [f["split"] for f in c["data_files"]] for c in hub_configs(manifest)}
    assert got == {"gqa": ["train", "val"], "gqa_rejects": ["val"], "vsr_rejects": ["val"]}


def test_area_bins_spread_small_boxes_over_many_bins():
    """The box-area histogram's bins follow the data on a log scale: ratios between 0.002 and 0.05
    (small looks on large pages) fill most bins, where linear [0, 1] bins put them all in one."""
    import numpy as np

    from vlir.corpus.cards import area_bins

    ratios = list(np.geomspace(0.002, 0.05, 200))
    counts, _ = np.histogram(ratios, bins=area_bins(ratios))
    assert (counts > 0).sum() >= 10
    linear, _ = np.histogram(ratios, bins=10, range=(0, 1))
    assert (linear > 0).sum() == 1
    assert area_bins([]) == [1e-3, 1.0] and len(area_bins([0.5])) == 13


def test_card_plots_have_titles(vlir_output, monkeypatch):
    import matplotlib.figure

    titles = []
    real = matplotlib.figure.Figure.savefig

    def spy(fig, *args, **kwargs):
        titles.extend(ax.get_title() for ax in fig.axes)
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    write_card(vlir_output)
    assert titles and all(titles), titles
    assert "Size of the looked-at regions" in titles
