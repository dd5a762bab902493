"""Defaults of the keypoint tools (Neural Best-Buddies and DST's point cleaning), shared by the ``nbb`` command,
the DST config and the code, so each number is written once."""

NBB_SIZE = 224  # NBB's imageSize for its demo (kfiraberman/neural_best_buddies); DST runs it at 256
DST_WORK_SIZE = 256  # DST job_example.sh: im_size, the frame its cleaning works in
DST_MAX_POINTS = 80  # DST cleanpoints.py via job_example.sh: max_num_points
DST_SPACING = 10  # DST cleanpoints.py: b, px at the working size
DST_MIN_ACTIVATION = 1.0  # DST cleanpoints.py: pairs below this activation are dropped
