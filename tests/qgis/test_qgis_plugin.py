"""The plugin object, its metadata, the algorithm's parameters and help, and the dependency check."""
import configparser
import os
import re
import sys

import pytest

from qgis.core import (
    QgsApplication,
    QgsProcessingOutputHtml,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingParameterBand,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingContext,
)

pytestmark = pytest.mark.qgis

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_metadata():
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(os.path.join(REPO, "metadata.txt"), encoding="utf-8")
    return dict(parser["general"])


def test_metadata_has_every_field_the_plugin_repository_requires():
    meta = read_metadata()
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author",
                "email", "repository", "tracker", "tags", "category", "icon"):
        assert meta.get(key, "").strip(), key
    assert meta["qgisMinimumVersion"] == "3.22"
    assert meta["version"] == "0.1.0"
    assert meta["hasProcessingProvider"] == "yes"
    assert meta["author"] == "dffn_qgis developers"
    assert meta["email"] == "dffn-qgis@example.org"
    assert meta["repository"] == "https://github.com/dffn-qgis/dffn_qgis"
    assert os.path.exists(os.path.join(REPO, meta["icon"]))
    assert "<svg" in open(os.path.join(REPO, meta["icon"]), encoding="utf-8").read()


def test_license_is_the_gpl2():
    text = open(os.path.join(REPO, "LICENSE"), encoding="utf-8").read()
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 2, June 1991" in text


def test_class_factory_init_processing_and_unload(qgis_app, dffn_provider):
    import dffn_qgis

    registry = QgsApplication.processingRegistry()
    registry.removeProvider(registry.providerById("dffn"))
    try:
        plugin = dffn_qgis.classFactory(None)
        plugin.initProcessing()
        plugin.initProcessing()  # idempotent: initGui calls it too
        assert registry.providerById("dffn") is plugin.provider
        alg = registry.algorithmById("dffn:unmix")
        assert alg is not None and alg.displayName() == "DFFN Unmix"
        plugin.unload()
        assert registry.providerById("dffn") is None
    finally:
        from dffn_qgis.processing_provider.provider import DFFNProvider
        if registry.providerById("dffn") is None:
            registry.addProvider(DFFNProvider())


def test_init_gui_adds_the_actions_and_unload_removes_them(qgis_iface, dffn_provider):
    import dffn_qgis

    from dffn_qgis.gui import qgis_fixes

    registry = QgsApplication.processingRegistry()
    registry.removeProvider(registry.providerById("dffn"))
    plugin = dffn_qgis.classFactory(qgis_iface)
    buggy_qgis = qgis_fixes.needs_fix()  # True on QGIS 3.22 (batch dialog vs HTML outputs)
    try:
        plugin.initGui()
        assert not qgis_fixes.needs_fix()
        assert registry.algorithmById("dffn:unmix") is not None
        assert plugin.action.text() == "Unmix with DFFN\u2026"
        menu_actions = [c.args[1] for c in qgis_iface.addPluginToRasterMenu.call_args_list]
        assert plugin.action in menu_actions
        layer_actions = [c.args[0] for c in qgis_iface.addCustomActionForLayerType.call_args_list]
        assert plugin.action in layer_actions
    finally:
        plugin.unload()
        from dffn_qgis.processing_provider.provider import DFFNProvider
        registry.addProvider(DFFNProvider())
    assert qgis_iface.removeCustomActionForLayerType.called
    assert qgis_fixes.needs_fix() == buggy_qgis


def test_parameters_and_outputs(dffn_provider):
    alg = QgsApplication.processingRegistry().createAlgorithmById("dffn:unmix")
    assert alg.id() == "dffn:unmix" and alg.name() == "unmix"
    p = {d.name(): d for d in alg.parameterDefinitions()}
    assert isinstance(p["INPUT"], QgsProcessingParameterRasterLayer)
    n = p["N_ENDMEMBERS"]
    assert isinstance(n, QgsProcessingParameterNumber)
    assert n.defaultValue() == 3 and n.minimum() == 0          # 0: estimated from the image
    bands = p["BANDS"]
    assert isinstance(bands, QgsProcessingParameterBand)
    assert bands.allowMultiple() and bands.parentLayerParameterName() == "INPUT"
    assert bands.flags() & QgsProcessingParameterDefinition.FlagOptional
    assert isinstance(p["PRESET"], QgsProcessingParameterEnum) and p["PRESET"].options() == ["fast", "paper"]
    assert isinstance(p["DEVICE"], QgsProcessingParameterEnum) and p["DEVICE"].options() == ["auto", "cpu", "cuda"]
    assert p["SEED"].defaultValue() == 1
    advanced = {name for name, d in p.items() if d.flags() & QgsProcessingParameterDefinition.FlagAdvanced}
    assert {"EPOCHS", "LR", "W", "KERNEL", "A", "B", "C", "STARTS", "PRECISION"} <= advanced
    assert not advanced & {"INPUT", "N_ENDMEMBERS", "BANDS", "PRESET", "DEVICE", "SEED"}
    from dffn_qgis.core.run.parameters import BY_NAME
    for name in advanced:
        if name.lower() in BY_NAME and BY_NAME[name.lower()].kind is not str:
            assert p[name].defaultValue() is None
        assert p[name].flags() & QgsProcessingParameterDefinition.FlagOptional

    assert isinstance(p["OUTPUT"], QgsProcessingParameterRasterDestination)
    assert isinstance(p["ERROR"], QgsProcessingParameterRasterDestination)
    assert isinstance(p["ABUNDANCE_FOLDER"], QgsProcessingParameterFolderDestination)
    assert isinstance(p["ENDMEMBERS"], QgsProcessingParameterFileDestination)
    assert "csv" in p["ENDMEMBERS"].defaultFileExtension()
    assert isinstance(p["PLOT"], QgsProcessingParameterFileDestination)
    outputs = {o.name(): o for o in alg.outputDefinitions()}
    assert isinstance(outputs["OUTPUT_LAYERS"], QgsProcessingOutputMultipleLayers)
    assert isinstance(outputs["PLOT"], QgsProcessingOutputHtml)  # shows in the Results Viewer
    assert set(outputs) >= {"OUTPUT", "ABUNDANCE_FOLDER", "OUTPUT_LAYERS", "ENDMEMBERS", "PLOT", "ERROR"}
    assert alg.flags() & alg.FlagSupportsBatch and alg.flags() & alg.FlagCanCancel
    assert not alg.flags() & alg.FlagNoThreading


def test_every_parameter_of_the_schema_is_a_dialog_parameter_with_its_bounds(dffn_provider):
    from dataclasses import fields

    from dffn_qgis.core.run.config import DFFNParams
    from dffn_qgis.core.run.parameters import SCHEMA

    assert {f.name for f in fields(DFFNParams)} == {p.name for p in SCHEMA}
    alg = QgsApplication.processingRegistry().createAlgorithmById("dffn:unmix")
    definitions = {d.name(): d for d in alg.parameterDefinitions()}
    for parameter in SCHEMA:
        d = definitions[parameter.qgis_name]
        assert bool(d.flags() & QgsProcessingParameterDefinition.FlagAdvanced) == parameter.advanced, d.name()
        if parameter.kind is str:
            options = d.options()[1:] if parameter.advanced else d.options()
            assert options == list(parameter.choices), d.name()
        else:
            assert (d.minimum(), d.maximum()) == (parameter.low, parameter.high), d.name()
            assert (d.dataType() == QgsProcessingParameterNumber.Integer) == (parameter.kind is int), d.name()
    assert "PADDING" not in definitions          # derived from the kernel, not a parameter


def test_optional_outputs_are_created_by_default_and_only_the_stack_is_required(dffn_provider):
    alg = QgsApplication.processingRegistry().createAlgorithmById("dffn:unmix")
    definitions = {d.name(): d for d in alg.parameterDefinitions()}
    assert not definitions["OUTPUT"].flags() & QgsProcessingParameterDefinition.FlagOptional
    for name in ("ABUNDANCE_FOLDER", "ENDMEMBERS", "PLOT", "ERROR"):
        assert definitions[name].flags() & QgsProcessingParameterDefinition.FlagOptional, name
        assert definitions[name].createByDefault(), name


def test_help_is_plain_text_and_explains_every_parameter(dffn_provider):
    alg = QgsApplication.processingRegistry().createAlgorithmById("dffn:unmix")
    text = alg.shortHelpString()
    assert not re.search(r"</?[a-zA-Z][^>]*>", text), "HTML tags show up raw in qgis_process help"
    for name in [d.name() for d in alg.parameterDefinitions()] + ["OUTPUT_LAYERS"]:
        if name in ("INPUT", "N_ENDMEMBERS", "BANDS", "PRESET", "DEVICE", "SEED"):
            continue
        assert name in text, name
    for words in ("Number of endmembers", "Bands", "Preset", "Device", "seed", "preset's value"):
        assert words in text


def _params(alg, extra=None):
    values = {"INPUT": None, "N_ENDMEMBERS": 4, "PRESET": 0, "DEVICE": 1, "SEED": 7}
    values.update(extra or {})
    return alg.params_from(values, QgsProcessingContext())


def test_unset_advanced_parameters_take_the_preset_value(dffn_provider):
    from dataclasses import replace

    from dffn_qgis.core.run.config import PRESETS

    alg = QgsApplication.processingRegistry().createAlgorithmById("dffn:unmix")
    preset, params = _params(alg)
    assert preset == "fast"
    assert params == replace(PRESETS["fast"], n_endmembers=4, device="cpu", seed=7)
    # unset in the several ways QGIS hands it over
    for unset in (None, ""):
        assert _params(alg, {"EPOCHS": unset, "W": unset})[1].epochs == PRESETS["fast"].epochs
    _, params = _params(alg, {"PRESET": 1})
    assert params.epochs == PRESETS["paper"].epochs and params.starts == PRESETS["paper"].starts
    _, params = _params(alg, {"EPOCHS": 5, "LR": 0.01, "W": 0.0, "A": 2.0, "STARTS": 2, "PRECISION": 1})
    assert (params.epochs, params.lr, params.w, params.a, params.starts, params.precision) == \
        (5, 0.01, 0.0, 2.0, 2, "float32")
    if "SCHEDULE" in {d.name() for d in alg.parameterDefinitions()}:
        assert _params(alg, {"SCHEDULE": 2})[1].schedule == "cosine"
        assert _params(alg, {"SCHEDULE": 0})[1].schedule == PRESETS["fast"].schedule
    _, params = _params(alg, {"KERNEL": 3})
    assert params.kernel == 3 and params.padding == 1
    from qgis.core import QgsProcessingException
    with pytest.raises(QgsProcessingException, match="kernel"):
        _params(alg, {"KERNEL": 4})


def test_install_hint_for_qgis_on_debian(monkeypatch):
    from dffn_qgis.core import deps

    monkeypatch.setattr(deps, "in_virtualenv", lambda: False)
    monkeypatch.setattr(deps, "externally_managed", lambda: True)
    monkeypatch.setattr(deps, "python_executable", lambda: "/usr/bin/python3")
    hint = deps.install_hint(["torch", "spectral"])
    assert "torch" in hint and "spectral" in hint
    assert ("/usr/bin/python3 -m pip install --user --break-system-packages "
            "--index-url https://download.pytorch.org/whl/cpu torch") in hint
    assert "/usr/bin/python3 -m pip install --user --break-system-packages spectral numpy==" in hint
    assert "restart QGIS" in hint


def test_install_hint_inside_a_venv_has_no_user_flag(monkeypatch):
    from dffn_qgis.core import deps

    monkeypatch.setattr(deps, "in_virtualenv", lambda: True)
    commands = deps.install_commands(["torch"])
    assert commands == ["{} -m pip install --index-url {} torch".format(
        deps.python_executable(), deps.TORCH_CPU_INDEX)]


def test_python_executable_inside_qgis(monkeypatch):
    """In QGIS, sys.executable is the QGIS binary: the hint must name a real Python."""
    from dffn_qgis.core import deps

    monkeypatch.setattr(sys, "executable", "/usr/bin/qgis.bin")
    exe = deps.python_executable()
    assert os.path.basename(exe).startswith("python") and os.path.exists(exe)


def test_python_executable_ignores_another_python_on_path(monkeypatch, tmp_path):
    """qgis_process reports the first python3 on PATH as sys.executable: not QGIS's Python."""
    from dffn_qgis.core import deps

    other = tmp_path / "shims" / "python3"
    other.parent.mkdir()
    other.write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "executable", str(other))
    monkeypatch.setattr(sys, "exec_prefix", sys.base_exec_prefix)  # QGIS's Python: no venv
    monkeypatch.setattr(sys, "prefix", sys.base_prefix)
    monkeypatch.setattr(deps, "in_virtualenv", lambda: False)
    version = "python{}.{}".format(*sys.version_info[:2])
    if not os.path.exists(os.path.join(sys.base_exec_prefix, "bin", version)):
        pytest.skip("no interpreter under " + sys.base_exec_prefix)
    exe = deps.python_executable()
    assert exe.startswith(os.path.join(sys.base_exec_prefix, "bin") + os.sep)
    assert os.path.realpath(exe) == os.path.realpath(os.path.join(sys.base_exec_prefix, "bin", version))


def test_missing_dependencies_does_not_import(monkeypatch):
    from dffn_qgis.core import deps

    monkeypatch.setitem(sys.modules, "torch", None)  # what a failed import leaves behind
    assert "torch" in deps.missing_dependencies()
    assert deps.missing_dependencies(["os"]) == []
    assert "nonexistent_dffn_module" in deps.missing_dependencies(["nonexistent_dffn_module"])
