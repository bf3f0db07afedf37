"""The names ``chalice deploy`` gives what it creates, and the on-failure queue's.

One place for the rules that the local loop and an app's deploy helpers share:
the Lambda function ``<app>-<stage>-<function>``, the EventBridge rule of a
schedule ``<app>-<stage>-<function>-event`` (chalice/deploy/appgraph.py), and
the on-failure SQS queue this tool models as ``<app>-<stage>-<function>-failures``.
"""


def deployed_name(app_name: str, stage: str, function_name: str) -> str:
    """The Lambda function ``chalice deploy`` creates: ``<app>-<stage>-<function>``."""
    return f"{app_name}-{stage}-{function_name}"


def rule_name(app_name: str, stage: str, function_name: str) -> str:
    """The EventBridge rule ``chalice deploy`` creates for a schedule or a CloudWatch event."""
    return f"{deployed_name(app_name, stage, function_name)}-event"


def failure_queue_name(app_name: str, stage: str, function_name: str) -> str:
    """The on-failure destination queue of a function's asynchronous invocations."""
    return f"{deployed_name(app_name, stage, function_name)}-failures"
