"""What happens to a run's layers once it is over, on the main thread.

:func:`register_layers_to_load` is called by the algorithm (in any thread) and only hands paths
and post-processors to the ``QgsProcessingContext``. Processing loads those layers when the run
has finished (Toolbox, batch, modeler) and calls each post-processor's ``postProcessLayer`` on
the main thread: that is where the layers are renamed, styled, grouped and where the endmember
plot dock is opened. ``qgis_process`` loads nothing, so it only writes files.

Loading rule: when the user asked to open the abundance output (the "Open output file after
running algorithm" box of OUTPUT, or "Load layers on completion" in batch), the abundances are
opened as one single-band layer per endmember in a group named after the input ("DFFN <input>"),
instead of the multi-band stack (QGIS would show the stack as an RGB of the first three endmembers,
which is hard to read). Inside the group a layer is named by what tells it apart, the endmember's
name ("vegetation"), and drawn from white (none) to the endmember's colour (all of it): the colour
of its line in the plot and of its row in the report. The reconstruction error and dominant
endmember layers, if asked for, join the group. Nothing else is loaded, so a run with loading
switched off adds nothing to the project.
"""
import os

from qgis.core import (
    QgsColorRampShader,
    QgsGradientColorRamp,
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterBandStats,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
)
from qgis.PyQt import sip
from qgis.PyQt.QtGui import QColor

SORT_KEY = "dffn/sort_key"
ROLE_KEY = "dffn/role"

# Shows the endmember plot once a run's layers are loaded: set by the plugin in the desktop
# (gui/plot_dock.py's show_plot), left unset where there is no window (qgis_process). gui/ uses this
# package, never the reverse.
_PLOT_VIEWER = None


def set_plot_viewer(show):
    """``show(png_path, title, report_path=..., record_path=...)`` is called with a run's plot PNG (or
    None), its HTML report (or None) and its run record (``<stack>.json``, which names the endmember
    spectra) once its layers are loaded (``show`` None: nothing is shown)."""
    global _PLOT_VIEWER
    _PLOT_VIEWER = show


# Post-processors are plain Python objects the context only points to: without a reference
# here they would be garbage-collected before Processing calls them.
_KEEP = []
_MAX_KEPT_RUNS = 20


def _raster_type_hint():
    """QgsProcessingUtils.LayerHint.Raster, or None where this QGIS names it differently."""
    hints = getattr(QgsProcessingUtils, "LayerHint", None)
    hint = getattr(hints, "Raster", None) if hints is not None else None
    if hint is None:  # pragma: no cover - newer QGIS: Qgis.ProcessingLayerHint
        try:
            from qgis.core import Qgis
            hint = Qgis.ProcessingLayerHint.Raster
        except AttributeError:
            hint = None
    return hint


ERROR_LAYER_NAME = "reconstruction error"
DOMINANT_LAYER_NAME = "dominant endmember"


def register_layers_to_load(context, input_name, stack, abundances, endmember_names, error,
                            plot_png, dominant=None, report_html=None):
    """Hand the run's layers to ``context`` following the loading rule of this module.

    Thread-safe: touches only ``context`` (the one Processing gave the algorithm).
    """
    load_stack = bool(stack and context.willLoadLayerOnCompletion(stack) and abundances)
    load_error = bool(error and context.willLoadLayerOnCompletion(error))
    load_dominant = bool(dominant and context.willLoadLayerOnCompletion(dominant))
    count = (len(abundances) if load_stack else 0) + load_error + load_dominant
    if count == 0:
        return None
    record = os.path.splitext(stack)[0] + ".json" if load_stack else None
    run = RunDisplay(input_name, plot_png if load_stack else None, count, report_html, record)
    if load_stack:
        project = context.layerToLoadOnCompletionDetails(stack).project
        layers = context.layersToLoadOnCompletion()
        layers.pop(stack, None)
        context.setLayersToLoadOnCompletion(layers)
        for i, (path, em_name) in enumerate(zip(abundances, endmember_names)):
            details = QgsProcessingContext.LayerDetails(em_name, project, "OUTPUT_LAYERS")
            hint = _raster_type_hint()
            if hint is not None:
                details.layerTypeHint = hint
            _set_group(details, run, i)
            processor = AbundancePostProcessor(run, i, details.name, len(abundances))
            run.keep(processor)
            details.setPostProcessor(processor)
            context.addLayerToLoadOnCompletion(path, details)
    for path, wanted, name, kind in ((error, load_error, ERROR_LAYER_NAME, ErrorPostProcessor),
                                     (dominant, load_dominant, DOMINANT_LAYER_NAME, DominantPostProcessor)):
        if not wanted:
            continue
        details = context.layerToLoadOnCompletionDetails(path)
        details.name = name
        _set_group(details, run, kind.sort_key)
        processor = kind(run, details.name)
        run.keep(processor)
        details.setPostProcessor(processor)
    _KEEP.append(run)
    del _KEEP[:-_MAX_KEPT_RUNS]
    return run


def _set_group(details, run, sort_key):
    # QGIS 3.32+ can put a loaded layer into a group itself; older versions leave it to us.
    if hasattr(details, "groupName"):
        details.groupName = run.group_base
    if hasattr(details, "layerSortKey"):
        details.layerSortKey = sort_key


class RunDisplay:
    """State shared by the post-processors of one run: its layer group and the plot dock."""

    def __init__(self, input_name, plot_png, n_layers, report_html=None, record_json=None):
        self.input_name = input_name
        self.group_base = "DFFN {}".format(input_name)
        self.plot_png = plot_png if plot_png and os.path.exists(plot_png) else None
        self.report_html = report_html if report_html and os.path.exists(report_html) else None
        self.record_json = record_json if record_json and os.path.exists(record_json) else None
        self.pending = n_layers
        self.plot_shown = False
        self.group = None
        self.layers = []
        self._processors = []

    def keep(self, processor):
        self._processors.append(processor)

    def layer_group(self, project, node):
        """The run's group: the one QGIS made (3.32+) or a new one at the top of the tree."""
        if self.group is not None and not sip.isdeleted(self.group):
            return self.group
        parent = node.parent() if node is not None else None
        if parent is not None and parent is not project.layerTreeRoot() \
                and parent.name() == self.group_base and not parent.customProperty(ROLE_KEY):
            parent.setCustomProperty(ROLE_KEY, "dffn_group")
            self.group = parent
            return parent
        root = project.layerTreeRoot()
        names = {child.name() for child in root.children()}
        name, n = self.group_base, 2
        while name in names:
            name = "{} ({})".format(self.group_base, n)
            n += 1
        self.group = root.insertGroup(0, name)
        self.group.setCustomProperty(ROLE_KEY, "dffn_group")
        return self.group

    def done(self, layer):
        self.layers.append(layer.id())
        self.pending -= 1
        if not self.plot_shown and _PLOT_VIEWER is not None and (self.plot_png or _names_spectra(self.record_json)):
            self.plot_shown = True
            try:
                _PLOT_VIEWER(self.plot_png, "DFFN endmember spectra: {}".format(self.input_name),
                             report_path=self.report_html, record_path=self.record_json)
            except Exception as exc:  # never let the dock break the loading of layers
                from qgis.core import QgsMessageLog
                QgsMessageLog.logMessage("Cannot show the endmember plot: {}".format(exc), "DFFN")
        if self.pending <= 0 and self in _KEEP:
            _KEEP.remove(self)


def _names_spectra(record_json):
    """Whether the run record ``record_json`` names an endmember file that exists (what the panel draws)."""
    import json

    if not record_json:
        return False
    try:
        with open(record_json, encoding="utf-8") as f:
            outputs = json.load(f).get("outputs") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return any(p and os.path.exists(p) for p in (outputs.get("endmembers_csv"), outputs.get("endmembers_sli")))


def _project_of(layer, context):
    candidates = []
    if hasattr(layer, "project") and layer.project() is not None:
        candidates.append(layer.project())
    if context is not None and context.project() is not None:
        candidates.append(context.project())
    candidates.append(QgsProject.instance())
    for project in candidates:
        if project.mapLayer(layer.id()) is not None:
            return project
    return None


def put_in_group(layer, run, sort_key, context, visible=True, expanded=True):
    """Move ``layer``'s tree node into the run's group, ordered by ``sort_key``.

    The desktop may already have added the layer inside the group (its insertion point follows
    the Layers panel's current item), in any order: the node is then moved to its place.
    """
    project = _project_of(layer, context)
    if project is None:
        return None
    layer.setCustomProperty(SORT_KEY, sort_key)
    root = project.layerTreeRoot()
    node = root.findLayer(layer.id())
    group = run.layer_group(project, node)
    position = 0
    for child in group.children():
        if child is node:
            continue
        child_layer = child.layer() if hasattr(child, "layer") else None
        key = child_layer.customProperty(SORT_KEY) if child_layer is not None else None
        if key is not None and int(key) < sort_key:
            position += 1
    if node is None:
        node = group.insertLayer(position, layer)
    else:
        siblings = group.children()
        current = siblings.index(node) if node.parent() is group else None
        if current != position:
            # insert the copy first: a layer whose last tree node goes leaves the project
            insert_at = position + 1 if current is not None and current < position else position
            clone = node.clone()
            group.insertChildNode(insert_at, clone)
            node.parent().removeChildNode(node)
            node = clone
    if node is not None:
        node.setItemVisibilityChecked(visible)
        node.setExpanded(expanded)
    return group


def _color_ramp(name, start, stop):
    """QGIS's ramp ``name`` from the default style, or a gradient from ``start`` to ``stop`` (RGB 0-255)."""
    ramp = None
    try:
        ramp = QgsStyle.defaultStyle().colorRamp(name)
    except Exception:
        ramp = None
    return ramp if ramp is not None else QgsGradientColorRamp(QColor(*start), QColor(*stop))


def abundance_ramp(index, count):
    """Endmember ``index`` of ``count``'s ramp: white to the colour of its line in the plot."""
    from ..core.report.plotting import abundance_ramp as stops

    low, high = stops(index, count)
    return QgsGradientColorRamp(QColor.fromRgbF(*low), QColor.fromRgbF(*high))


def _no_min_max_limits():
    """The "user defined" min/max limits: ``Qgis.RasterRangeLimit.NotSet`` from QGIS 3.42 on (where
    3.44's ``QgsRasterMinMaxOrigin.None_`` is the *extent* alias ``WholeRaster``, which setLimits
    refuses), ``QgsRasterMinMaxOrigin.None_`` before."""
    from qgis.core import Qgis

    limit = getattr(getattr(Qgis, "RasterRangeLimit", None), "NotSet", None)
    return limit if limit is not None else getattr(QgsRasterMinMaxOrigin, "None_", None)


def pseudocolor(layer, minimum, maximum, ramp):
    """Style band 1 of ``layer`` as a continuous colour ``ramp`` from ``minimum`` to ``maximum``."""
    function = QgsColorRampShader(minimum, maximum)
    function.setSourceColorRamp(ramp.clone())
    interpolated = getattr(QgsColorRampShader, "Interpolated", None)
    if interpolated is not None:
        function.setColorRampType(interpolated)
    continuous = getattr(QgsColorRampShader, "Continuous", None)
    if continuous is not None:
        function.setClassificationMode(continuous)
    function.classifyColorRamp(5, 1, layer.extent(), None)
    shader = QgsRasterShader(minimum, maximum)
    shader.setRasterShaderFunction(function)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(minimum)
    renderer.setClassificationMax(maximum)
    no_limits = _no_min_max_limits()
    if no_limits is not None:
        origin = renderer.minMaxOrigin()
        origin.setLimits(no_limits)
        renderer.setMinMaxOrigin(origin)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return renderer


def _guarded(post_process, layer, context):
    """Run ``post_process(layer, context)`` without letting an error out, and never with the feedback.

    Processing calls ``postProcessLayer`` from its results handling, which the batch dialog (QGIS 3.24+)
    runs inside a Qt callback: an exception raised there aborts QGIS. The feedback it passes belongs to
    the dialog (deleted with it), so the post-processors neither use nor keep it; a failure is logged.
    """
    try:
        post_process(layer, context)
    except Exception:  # noqa: BLE001 - logged; the layer stays loaded, unstyled
        import traceback

        from qgis.core import QgsMessageLog

        QgsMessageLog.logMessage("Cannot style or group the layer {}:\n{}".format(
            getattr(layer, "name", lambda: "?")(), traceback.format_exc()), "DFFN")


class _RunLayerPostProcessor(QgsProcessingLayerPostProcessorInterface):
    """One layer of a run: named, tagged with its role, styled by :meth:`style` and put in the run's
    group at ``sort_key``; shown and expanded when ``visible``."""

    role, sort_key, visible = "", 0, False

    def __init__(self, run, name):
        super().__init__()
        self.run = run
        self.name = name

    def style(self, layer):
        raise NotImplementedError

    def postProcessLayer(self, layer, context, feedback):
        _guarded(self._post_process, layer, context)

    def _post_process(self, layer, context):
        if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
            return
        layer.setName(self.name)
        layer.setCustomProperty(ROLE_KEY, self.role)
        self.style(layer)
        put_in_group(layer, self.run, self.sort_key, context, visible=self.visible, expanded=self.visible)
        self.run.done(layer)


class AbundancePostProcessor(_RunLayerPostProcessor):
    """One per-endmember abundance layer: 0-1, white to the endmember's colour; the first endmember
    on the map with its legend, the others a tick away."""

    role = "abundance"

    def __init__(self, run, index, name, count):
        super().__init__(run, name)
        self.index = self.sort_key = index
        self.count = count
        self.visible = index == 0

    def style(self, layer):
        pseudocolor(layer, 0.0, 1.0, abundance_ramp(self.index, self.count))


class _HiddenLayerPostProcessor(_RunLayerPostProcessor):
    """A run's secondary layer: in the run's group, unticked."""


class ErrorPostProcessor(_HiddenLayerPostProcessor):
    """The reconstruction error layer, 0 to its maximum."""

    role, sort_key = "error", 10000

    def style(self, layer):
        try:
            maximum = float(layer.dataProvider().bandStatistics(1, QgsRasterBandStats.Stats.Max).maximumValue)
        except Exception:                            # no statistics (an empty layer): a 0-1 ramp
            maximum = 0.0
        if not maximum > 0.0 or maximum != maximum:
            maximum = 1.0
        pseudocolor(layer, 0.0, maximum, _color_ramp("Magma", (0, 0, 4), (252, 253, 191)))


class DominantPostProcessor(_HiddenLayerPostProcessor):
    """The dominant-endmember layer: one class per endmember, named and coloured as in the file."""

    role, sort_key = "dominant", 9000

    def style(self, layer):
        from qgis.core import QgsPalettedRasterRenderer

        provider = layer.dataProvider()
        names = _class_names(layer.source())
        classes = [c for c in QgsPalettedRasterRenderer.colorTableToClassData(provider.colorTable(1)) if c.value != 0]
        for c in classes:
            c.label = names.get(int(c.value), c.label)
        layer.setRenderer(QgsPalettedRasterRenderer(provider, 1, classes))
        layer.triggerRepaint()


def _class_names(path):
    """``{class value: name}`` from the ``CLASS_<k>`` band metadata the engine writes."""
    from osgeo import gdal

    ds = gdal.Open(path)
    if ds is None:
        return {}
    metadata = ds.GetRasterBand(1).GetMetadata() or {}
    ds = None
    return {int(key[6:]): value for key, value in metadata.items() if key.startswith("CLASS_") and key[6:].isdigit()}


def load_layers_on_completion(context, feedback=None):
    """Load what ``context`` holds for loading and run the post-processors (main thread).

    What Processing's dialogs do after a run; used by the plugin's own background task.
    """
    loaded = []
    for path, details in context.layersToLoadOnCompletion().items():
        project = details.project or context.project() or QgsProject.instance()
        layer = QgsRasterLayer(path, details.name or os.path.basename(path), "gdal")
        if not layer.isValid():
            continue
        project.addMapLayer(layer)
        processor = details.postProcessor()
        if processor is not None:
            processor.postProcessLayer(layer, context, feedback)
        loaded.append(layer)
    context.setLayersToLoadOnCompletion({})
    return loaded
