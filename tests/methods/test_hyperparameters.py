"""methods/hyperparameters.py: one construction rule for both conventions, and --set typed from the
declaration."""

import pytest

from methods import BaseMethod, all_method_handlers
from methods.hyperparameters import SettingError, build, parse_settings, values
from methods.salun import SalUn


def test_one_construction_rule_serves_both_conventions():
    from tests.fixtures.starter_kit_method import MyMethod

    class ReadmeStyle(BaseMethod):
        def __init__(self, epochs: int = 2, lr: float = 0.01):
            super().__init__("readme_style")
            self.epochs, self.lr = epochs, lr

    assert build(MyMethod, "mine").name == "mine"
    built = build(ReadmeStyle, "readme_style", {"lr": 0.5})
    assert (built.name, built.epochs, built.lr) == ("readme_style", 2, 0.5)
    assert values(built) == {"epochs": 2, "lr": 0.5}
    assert build(all_method_handlers()["kookmin"], "kookmin", {"lr": 0.002}).lr == 0.002


def test_settings_are_typed_from_the_declaration():
    from methods.sun import Sun

    assert parse_settings(Sun, ["full_lrs=2e-4, 1e-3", "epochs=4"]) == {"full_lrs": (2e-4, 1e-3), "epochs": 4}
    assert parse_settings(SalUn, ["batch_size=none", "freeze=gradients"]) == {"batch_size": None,
                                                                               "freeze": "gradients"}
    with pytest.raises(SettingError, match="no hyperparameter 'bogus'; valid: mask_fraction"):
        parse_settings(SalUn, ["bogus=1"])
    with pytest.raises(SettingError, match="expected an integer"):
        parse_settings(SalUn, ["epochs=1.5"])
