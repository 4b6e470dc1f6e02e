"""Experimental and deprecated names warn the user, by category, and never hptune itself."""

import warnings

import pytest

import hptune
from hptune._experimental import experimental
from hptune.phases import EpochsPhase


def test_a_user_building_the_paired_pruner_is_told_it_is_experimental() -> None:
    with pytest.warns(hptune.ExperimentalWarning, match="epoch_pruner is experimental"):
        hptune.epoch_pruner()
    with pytest.warns(hptune.ExperimentalWarning, match="PairedPruner is experimental"):
        hptune.PairedPruner()
    assert issubclass(hptune.ExperimentalWarning, hptune.HptuneWarning)


def test_hptune_building_its_own_pruner_warns_nothing() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pruner = EpochsPhase((1, 3)).create_pruner()
    assert isinstance(pruner, hptune.PairedPruner)


def test_every_experimental_name_says_so_in_its_docstring() -> None:
    for obj in (hptune.PairedPruner, hptune.epoch_pruner):
        assert "Experimental" in (obj.__doc__ or ""), obj


def test_the_decorator_keeps_what_it_wraps() -> None:
    @experimental("9.9")
    def add(a: int, b: int = 1) -> int:
        """Adds."""
        return a + b

    with pytest.warns(hptune.ExperimentalWarning, match=r"added in 9\.9"):
        assert add(2, b=3) == 5
    assert add.__name__ == "add" and add.__doc__ == "Adds."


def test_tune_is_a_deprecated_name_of_run(monkeypatch) -> None:
    import hptune._api

    calls = []
    monkeypatch.setattr(hptune._api, "run", lambda config, **options: calls.append(options))
    with pytest.warns(hptune.HptuneDeprecationWarning, match="hptune.tune is now hptune.run"):
        hptune.tune("c.yaml", quiet=True)
    assert calls == [{"quiet": True}]
