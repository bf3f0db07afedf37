"""A function that sleeps past its 1 s timeout."""

import time

from chalice import Chalice

app = Chalice(app_name="tiny")


@app.lambda_function(name="sleepy")
def sleepy(event, context):
    app.log.error("going to sleep")
    time.sleep(30)
    return "woke up"
