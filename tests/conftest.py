import os

os.environ.setdefault("MUJOCO_GL", "egl")
# Small test networks run fastest on one thread, and 2-core CI machines thrash with OpenMP spin-waits
# when parallel test processes each use every core. Set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")
