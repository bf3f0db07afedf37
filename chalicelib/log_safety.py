"""Keeping the role's credentials out of the functions' logs at any log level.

At DEBUG, botocore logs every request it signs: ``botocore.endpoint`` the
prepared request with its headers, ``botocore.auth`` the canonical request.
Both carry the access key id (in ``Authorization``) and the session token
(``X-Amz-Security-Token``): in Lambda, the function role's live credentials.
Lambda's Python runtime sets the root logger to the function's application
log level when one is configured, so choosing DEBUG there would copy them to
CloudWatch Logs. These two loggers are held at INFO; the rest of botocore's
DEBUG output (retries, endpoints, responses) is unaffected.
"""

import logging

SIGNING_LOGGERS = ("botocore.auth", "botocore.endpoint")


def keep_credentials_out_of_logs() -> None:
    for name in SIGNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
