"""The parameter schema: every run parameter declared once, reachable from the command line with
the schema's bounds (the QGIS side: tests/qgis/test_qgis_plugin.py)."""
from dataclasses import fields, replace

import pytest

from dffn_qgis import cli
from dffn_qgis.core.run.config import PRESETS, DFFNParams, params_for
from dffn_qgis.core.errors import InputError
from dffn_qgis.core.run.parameters import SCHEMA


def _unmix_options():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return {action.dest: action for action in sub.choices["unmix"]._actions}


def test_the_schema_names_every_field_once():
    names = [p.name for p in SCHEMA]
    assert len(names) == len(set(names))
    assert set(names) == {f.name for f in fields(DFFNParams)}


def test_every_preset_is_valid_under_the_schema():
    for preset in PRESETS.values():
        preset.validate()


@pytest.mark.parametrize("parameter", SCHEMA, ids=lambda p: p.name)
def test_every_parameter_is_a_command_line_option_with_the_schema_rules(parameter):
    action = _unmix_options()[parameter.name]
    assert set(parameter.cli_flags) <= set(action.option_strings)
    base = PRESETS["paper"]
    if parameter.kind is str:
        if parameter.check is None:
            assert list(action.choices) == list(parameter.choices)
        for choice in parameter.choices:
            replace(base, **{parameter.name: choice}).validate()
        with pytest.raises(InputError, match=parameter.name if parameter.check is None else "unknown"):
            replace(base, **{parameter.name: "no-such-choice"}).validate()
        return
    if parameter.name == "n_endmembers":
        assert action.type("auto") == 0 and action.type("4") == 4        # 0: estimated from the image
        with pytest.raises(InputError, match="or 0 to estimate it"):
            replace(base, n_endmembers=1).validate()
    else:
        assert action.type is parameter.kind
    for ok in (parameter.low, parameter.high):
        value = parameter.kind(ok)
        if parameter.name == "kernel" and value % 2 == 0:
            value -= 1                                          # kernel sizes are odd
        replace(base, **{parameter.name: value}).validate()
    step = 1 if parameter.kind is int else max(abs(parameter.high) * 1e-6, 1e-12)
    for bad, words in ((parameter.low - step, "at least"), (parameter.high + step, "at most")):
        with pytest.raises(InputError, match=f"{parameter.name} must be {words}"):
            replace(base, **{parameter.name: parameter.kind(bad)}).validate()


def test_command_line_values_reach_the_parameters():
    args = cli.build_parser().parse_args(["unmix", "in.tif", "-p", "4", "-o", "out", "--lr-step", "7",
                                          "--schedule", "step", "--eem-lr", "0.5", "--ffm-block", "99"])
    params = params_for(args.preset, **{p.name: getattr(args, p.name) for p in SCHEMA})
    assert (params.n_endmembers, params.lr_step, params.schedule, params.eem_lr, params.ffm_block) == \
        (4, 7, "step", 0.5, 99)
    assert params.epochs == PRESETS[args.preset].epochs      # unset: the preset's value


def test_help_shows_each_presets_default_from_the_presets():
    options = _unmix_options()
    assert f"fast {PRESETS['fast'].epochs}" in options["epochs"].help
    assert f"paper {PRESETS['paper'].epochs}" in options["epochs"].help


def test_padding_is_derived_from_the_kernel():
    assert "padding" not in {f.name for f in fields(DFFNParams)}
    assert params_for("paper", kernel=3).padding == 1
    with pytest.raises(InputError, match="unknown parameter"):
        params_for("paper", padding=1)
