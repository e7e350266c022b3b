import os

# Small test networks run fastest on one thread, and 2-core CI machines thrash with OpenMP spin-waits
# when parallel test processes each use every core. Set before torch is imported.
# (No rendering set-up here: the package picks MuJoCo's headless backend itself, see test_headless.py.)
os.environ.setdefault("OMP_NUM_THREADS", "1")
