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
