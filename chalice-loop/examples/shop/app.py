"""An app with every event source chalice-loop runs, and one it cannot (a websocket)."""

import json

from chalice import Chalice, Rate

app = Chalice(app_name="shop")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.log.setLevel("INFO")


@app.route("/")
def index():
    return {"shop": "open"}


@app.schedule(Rate(1, unit=Rate.DAYS), name="nightly")
def nightly(event):
    app.log.info("nightly report for %s", event.time)


@app.on_s3_event(bucket="shop-uploads", prefix="incoming/", suffix=".csv", name="on_upload")
def on_upload(event):
    app.log.info("new price list s3://%s/%s", event.bucket, event.key)


@app.on_sqs_message(
    queue="shop-orders", batch_size=5, maximum_batching_window_in_seconds=2, name="on_order"
)
def on_order(event):
    orders = [json.loads(record.body) for record in event]
    app.log.info("%d order(s): %s", len(orders), [order.get("id") for order in orders])


@app.on_sns_message(topic="shop-alerts", name="on_alert")
def on_alert(event):
    app.log.info("alert %r: %s", event.subject, event.message)


@app.on_cw_event(
    {"source": ["shop.payments"], "detail": {"amount": [{"numeric": [">=", 1000]}]}},
    name="on_big_payment",
)
def on_big_payment(event):
    app.log.info("big payment: %s", json.dumps(event.detail))


@app.lambda_function(name="resize")
def resize(event, context):
    return {"resized": event.get("image", "none")}


@app.on_ws_message(name="chat")
def chat(event):
    return None
