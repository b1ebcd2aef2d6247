"""The training grid: one grid-point type whose fields name the config axes, the folders and the table columns."""

import pytest
from snakemake.utils import Paramspace

from e3hier.training.grid import POINT_KEYS, GridPoint, block_name, folder_values, preferred_output, training_grid

TRAIN = {
    "lmax_hidden": [2, 0],
    "output": ["scalar", "full"],
    "seed": [0, 1],
    "n_train": [8, "all"],
    "matched_capacity": ["full"],
    "equal_channels": ["full"],
}


def test_folder_names_are_the_paramspace_patterns_of_the_workflow():
    """The folders the rules write (Paramspace) and the names the code builds are the same strings."""
    table = training_grid(TRAIN)
    space = Paramspace(table, filename_params="*", param_sep="~")
    names = [GridPoint.from_mapping(row).name for row in table.to_dict("records")]
    assert names == list(space.instance_patterns)
    assert names[0] == "lmax_hidden~0_output~scalar_capacity~study_channels~study_seed~0_n_train~8"


def test_config_axes_table_columns_and_point_fields_share_their_names():
    assert tuple(training_grid(TRAIN).columns) == POINT_KEYS
    assert {"lmax_hidden", "output", "seed", "n_train"} <= set(TRAIN) & set(POINT_KEYS)


def test_points_from_wildcards_take_one_type_per_field():
    """Wildcards are strings; a point made from them equals the point of the grid table."""
    wildcards = {
        "lmax_hidden": "2",
        "output": "full",
        "capacity": "study",
        "channels": "study",
        "seed": "1",
        "n_train": "all",
        "unrelated": "x",
    }
    point = GridPoint.from_mapping(wildcards)
    assert point == GridPoint(2, "full", seed=1) and point.seed == 1 and point.n_train == "all"
    assert GridPoint(0, "full", n_train=8).n_train == "8"


@pytest.mark.parametrize(
    ("outputs", "drawn"), [(["scalar", "full", "vector"], "full"), (["scalar", "higher"], "higher")]
)
def test_single_output_figures_draw_the_full_density_else_the_last_output(outputs, drawn):
    assert preferred_output(outputs) == drawn


def test_folder_names_parse_back_into_their_points():
    """The cost plan reads grid points from the DAG's folder names; keys hold "_" (lmax_hidden, n_train)."""
    for row in training_grid(TRAIN).to_dict("records"):
        point = GridPoint.from_mapping(row)
        assert GridPoint.from_mapping(folder_values(point.name)) == point
    assert folder_values(block_name(GridPoint(2, "full").as_dict(), [0, 1]))["seed"] == "0-1"
    with pytest.raises(ValueError, match="lmax~2_output"):
        folder_values("lmax~2_output~full_capacity~study_channels~study_seed~0_ntrain~all")  # the old names
