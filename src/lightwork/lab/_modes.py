"""What the lab measures against: shared by the lab and its command line, cheap to import."""

MODES = ("strong", "weak")  #: Amdahl (fixed work) or Gustafson (work grows with the workers)
BASELINE_BACKEND = "serial"  #: T1, the one-worker time every speed-up divides
CEILING = "ceiling"  #: the label of the machine's own points: the work in independent processes
