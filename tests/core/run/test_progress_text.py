"""What a progress display shows: stages at once, the running stage every two seconds, time left."""
from dffn_qgis.core.run.progress import StatusLine, time_left


def test_time_left_reads_naturally_and_waits_for_enough_progress():
    assert time_left(1.0, 0.5) == "" and time_left(100.0, 0.01) == "" and time_left(100.0, 1.0) == ""
    assert time_left(10.0, 0.5) == "about 10 s left"
    assert time_left(60.0, 0.25) == "about 3 min 00 s left"
    assert time_left(3600.0, 0.5) == "about 1 h 00 min left"


def test_the_running_stage_updates_every_two_seconds_and_a_new_stage_at_once():
    now = [0.0]
    line = StatusLine(every=2.0, clock=lambda: now[0])
    assert line.update(0.1, "training: epoch 1, loss 0.5") == "training: epoch 1, loss 0.5"
    now[0] = 1.0
    assert line.update(0.2, "training: epoch 2, loss 0.4") is None                  # same stage, too soon
    assert line.update(0.2, "writing rasters") == "writing rasters"                 # a new stage
    now[0] = 5.0
    assert line.update(0.5, "writing rasters 2") == "writing rasters 2 (about 5 s left)"
    assert line.update(0.5, "") is None
