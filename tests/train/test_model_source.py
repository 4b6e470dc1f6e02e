"""Model loading, local first: a hub id is read from the local cache unless downloads are on."""

import pytest

from hptune.config import ModelConfig
from hptune.exceptions import ModelError
from hptune.train.model import load_tokenizer, model_source


def test_a_hub_id_is_read_from_the_cache_only_unless_downloads_are_allowed(demo_path) -> None:
    assert model_source(ModelConfig(path="acme/llama"))[1]["local_files_only"] is True
    allowed = model_source(ModelConfig(path="acme/llama", allow_download=True))[1]
    assert "local_files_only" not in allowed
    local = model_source(ModelConfig(path=str(demo_path / "model")))[1]
    assert "local_files_only" not in local  # a folder is read from disk either way


def test_a_hub_id_not_in_the_cache_names_the_fixes(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(
        ModelError,
        match=r"'acme/llama' is not a local folder, and as a hub id "
        r"it is not in the local Hugging Face cache.*model\.allow_download: true",
    ):
        load_tokenizer(ModelConfig(path="acme/llama"))
