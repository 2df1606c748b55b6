"""Layer post-processing on its own: order and visibility inside the run's group, whatever order
and place QGIS adds the layers in."""
import pytest

from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsRasterLayer

pytestmark = pytest.mark.qgis


@pytest.fixture(scope="module")
def abundance_files(tmp_path_factory):
    import numpy as np
    from osgeo import gdal

    folder = tmp_path_factory.mktemp("abundances")
    paths = []
    for i in range(4):
        path = str(folder / "em{}.tif".format(i + 1))
        ds = gdal.GetDriverByName("GTiff").Create(path, 4, 4, 1, gdal.GDT_Float32)
        ds.SetGeoTransform((0, 1, 0, 4, 0, -1))
        ds.GetRasterBand(1).WriteArray(np.full((4, 4), i / 4.0, dtype=np.float32))
        ds = None
        paths.append(path)
    return paths


@pytest.mark.parametrize("where", ["root", "group_top"])
@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]])
def test_layers_end_up_ordered_in_one_group(abundance_files, clean_project, where, order):
    from dffn_qgis.processing_provider.postprocess import AbundancePostProcessor, RunDisplay

    context = QgsProcessingContext()
    context.setProject(clean_project)
    feedback = QgsProcessingFeedback()
    run = RunDisplay("scene", None, len(order))
    group = run.layer_group(clean_project, None) if where == "group_top" else None
    for index in order:
        layer = QgsRasterLayer(abundance_files[index], "raw")
        if where == "root":  # what Processing does in QGIS 3.22
            clean_project.addMapLayer(layer)
        else:  # the desktop's insertion point inside the group
            clean_project.addMapLayer(layer, False)
            group.insertLayer(0, layer)
        AbundancePostProcessor(run, index, "endmember {}".format(index + 1), len(order)).postProcessLayer(
            layer, context, feedback)
    groups = clean_project.layerTreeRoot().findGroups()
    assert [g.name() for g in groups] == ["DFFN scene"]
    nodes = groups[0].findLayers()
    assert [n.layer().name() for n in nodes] == ["endmember {}".format(i + 1) for i in range(4)]
    assert [n.itemVisibilityChecked() for n in nodes] == [True, False, False, False]
    assert len(clean_project.mapLayers()) == 4
    assert clean_project.layerTreeRoot().findLayers() == nodes


def test_second_run_of_the_same_input_gets_its_own_group(abundance_files, clean_project):
    from dffn_qgis.processing_provider.postprocess import AbundancePostProcessor, RunDisplay

    context = QgsProcessingContext()
    context.setProject(clean_project)
    for _ in range(2):
        run = RunDisplay("scene", None, 1)
        layer = QgsRasterLayer(abundance_files[0], "raw")
        clean_project.addMapLayer(layer)
        AbundancePostProcessor(run, 0, "endmember 1", 1).postProcessLayer(
            layer, context, QgsProcessingFeedback())
    names = sorted(g.name() for g in clean_project.layerTreeRoot().findGroups())
    assert names == ["DFFN scene", "DFFN scene (2)"]


def test_each_abundance_layer_is_drawn_in_its_endmembers_colour(abundance_files, clean_project):
    """White for none of the endmember to its colour in the plot (and the report) for all of it: the
    legend entry shows the colour the plot's line has."""
    from qgis.PyQt.QtGui import QColor

    from dffn_qgis.core.report.plotting import distinct_colours, hex_colour
    from dffn_qgis.processing_provider.postprocess import AbundancePostProcessor, RunDisplay

    context = QgsProcessingContext()
    context.setProject(clean_project)
    run = RunDisplay("scene", None, 4)
    tops = []
    for index, path in enumerate(abundance_files):
        layer = QgsRasterLayer(path, "raw")
        clean_project.addMapLayer(layer)
        AbundancePostProcessor(run, index, "em", 4).postProcessLayer(layer, context, QgsProcessingFeedback())
        items = layer.renderer().shader().rasterShaderFunction().colorRampItemList()
        assert items[0].color.name() == QColor("white").name() and items[0].value == 0.0
        tops.append(items[-1].color.name())
        legend = layer.renderer().legendSymbologyItems()
        assert legend and legend[-1][1].name() == tops[-1]
    assert tops == [hex_colour(c) for c in distinct_colours(4)]
