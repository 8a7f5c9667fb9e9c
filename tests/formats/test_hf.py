"""``vlir export --format hf``: a Hub-ready folder that loads with ``load_dataset(folder, config)``
offline, shows images (embedded bytes), validates, and carries its card."""

from __future__ import annotations

import pytest
import yaml
from PIL import Image

from vlir.cli import main
from vlir.corpus.shards import Corpus
from vlir.corpus.validate import validate_output
from vlir.formats.hf import HubExportError, export_hub


def test_hub_export_loads_by_config_with_images(small_corpus, tmp_path, capsys):
    from datasets import load_dataset

    dest = tmp_path / "hub"
    assert main(["export", str(small_corpus), str(dest), "--format", "hf", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "huggingface-cli upload <user>/<dataset>" in out and "--repo-type dataset" in out
    assert validate_output(dest).ok
    header = yaml.safe_load((dest / "README.md").read_text().split("---\n")[1])
    configs = [c["config_name"] for c in header["configs"]]
    assert configs == ["gqa", "gqa_rejects"]
    original = Corpus(small_corpus)
    for config in configs:
        ds = load_dataset(str(dest), config, cache_dir=str(tmp_path / "hf"))["val"]
        rejects = config.endswith("_rejects")
        want = list(original.records("gqa", "val", rejects=rejects))
        assert ds["id"] == [r.sample.id for r in want]
        if rejects:  # the fixture's rejects name images that do not exist: they keep their reference
            assert ds["image"] == [None] * len(want) and ds["image_path"] == [r.sample.image for r in want]
            continue
        first = ds[0]["image"]
        assert isinstance(first, Image.Image)  # embedded: the Hub viewer shows it, any machine opens it
        assert first.size == (want[0].sample.width, want[0].sample.height)
        assert first.tobytes() == original.image(want[0]).tobytes()
    # the copy no longer needs the build machine's source roots
    assert Corpus(dest).manifest["roots"] == {} and Corpus(dest).manifest["config"]["embed_images"]


def test_hub_export_refuses_a_taken_dest_and_a_changed_image(small_corpus, taken_dest, tmp_path):
    with pytest.raises(HubExportError, match="not an empty folder"):
        export_hub(small_corpus, taken_dest)
    src = small_corpus.parent / f"{small_corpus.name}-src" / "images" / "0.jpg"
    saved = src.read_bytes()
    src.write_bytes(saved[:-10] + b"0123456789")
    try:
        with pytest.raises(HubExportError, match="differs from the sha256"):
            export_hub(small_corpus, tmp_path / "hub2")
    finally:
        src.write_bytes(saved)
