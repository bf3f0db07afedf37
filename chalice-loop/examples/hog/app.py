"""A 128 MB function that allocates ``event["mb"]`` MB: past 128 the slice kills it."""

from chalice import Chalice

app = Chalice(app_name="hog")


@app.lambda_function(name="hog")
def hog(event, context):
    block = b"x" * (event["mb"] * 2**20)  # every page touched
    return len(block)
