"""Limits shared by the benchmark's targets and the tests that pin the same things."""

ZIP_LIMIT_BYTES = 100 * 1024  # the deployment zip, 100 KiB
RSS_LIMIT_MB = 64  # peak RSS of a process that imports the app and invokes the worker
IMPORT_RATIO_LIMIT = 1.15  # import app / (import boto3 + client)
CLIENT_CPU_RATIO_LIMIT = 0.5  # cleanup client CPU per 1,000 objects / boto3 objects.all().delete()
ONE_RUN_OBJECTS = 100_000  # one scheduled cleanup run, in its slice, must delete this many
# Issue 20, on SeaweedFS, ratios from the same run (bench/peers.py):
OURS_OVER_S5CMD_LIMIT = 1.0  # ours at full CPU, objects/s, against s5cmd rm
SLICE_OVER_S5CMD_LIMIT = 0.8  # ours in the cleanup's configured slice against s5cmd at full CPU
CPU_OVER_S5CMD_LIMIT = 1.0  # ours' client CPU per 1,000 objects against s5cmd's
SCALE_RUN_OBJECTS = 1_000_000  # one scheduled run in its slice clears this many (--full)
