"""Prints template.yaml as the SAM transform translates it (CloudFormation JSON), offline.

Used by function-roles.test.mjs to check that sam-roles.mjs builds the function roles the way
SAM itself does. Run with the repository's .venv (scripts/setup-python installs
aws-sam-translator with the SAM CLI). Usage: python sam-translate.py TEMPLATE
"""

import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

# The translator wants a region and credentials to exist; nothing is called.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "ferry-offline")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "ferry-offline")


class ManagedPolicies:
    """SAM resolves managed policy *names* through this; only the one Ferry uses is known."""

    def load(self):
        return {
            "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
        }


def main(path):
    with open(path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    # `sam build` replaces the local CodeUri with an S3 location; the raw transform insists on one.
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = "s3://ferry-offline/code.zip"
    template.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    json.dump(transform(template, {}, ManagedPolicies()), sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
