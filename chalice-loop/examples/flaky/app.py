"""A nightly job whose first run fails: `up` retries it as Lambda's async delivery does."""

from chalice import Chalice, Rate

app = Chalice(app_name="flaky")
runs = {"nightly": 0}


@app.schedule(Rate(1, unit=Rate.DAYS), name="nightly")
def nightly(event):
    runs["nightly"] += 1
    if runs["nightly"] == 1:
        raise RuntimeError("the warehouse API is down")
    return {"run": runs["nightly"]}


@app.schedule(Rate(1, unit=Rate.DAYS), name="broken")
def broken(event):
    raise RuntimeError("the bucket is unreachable")
