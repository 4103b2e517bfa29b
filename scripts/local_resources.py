#!/usr/bin/env python3
"""Create the template's DynamoDB tables and SQS queues on the local stack.

infra/template.yaml is the single source of these definitions: this script reads every
AWS::DynamoDB::Table and AWS::SQS::Queue from it and creates the same thing locally, then
writes the functions' environment (Globals.Function.Environment, with !Ref/!GetAtt
resolved to the local names) to an env file.

usage: local_resources.py TEMPLATE ENV_FILE PREFIX   (endpoints from AWS_ENDPOINT_URL_*)
"""
import json
import os
import re
import sys

import boto3
from cfnlint.decode import cfn_yaml


def plain(value):
    """cfn-lint node classes -> plain Python values."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class Resolver:
    def __init__(self, template, prefix):
        self.template = template
        self.prefix = prefix
        self.physical = {}  # logical id -> local name / URL
        self.arns = {}
        # LOCAL_PARAMETERS="K=V,K=V": parameter values for this local stack (tests shorten
        # redrive), like `sam deploy --parameter-overrides`.
        self.overrides = dict(kv.split("=", 1) for kv in os.environ.get("LOCAL_PARAMETERS", "").split(",") if "=" in kv)

    def param(self, name):
        p = self.template.get("Parameters", {}).get(name)
        if p is None:
            raise KeyError(f"unknown parameter {name}")
        if name in self.overrides:
            return self.overrides[name]
        default = p.get("Default")
        if p.get("Type") == "CommaDelimitedList":
            return default if isinstance(default, list) else str(default).split(",")
        return default

    @staticmethod
    def is_intrinsic(key):
        return key in ("Ref", "Condition") or key.startswith("Fn::")

    def condition(self, name):
        return self.resolve(self.template.get("Conditions", {})[name])

    # Resources with no local counterpart, as names in !Sub: the console's CloudFront domain
    # (locally the console's own origin is allowed through the CorsAllowOrigins parameter).
    STAND_INS = {"ConsoleDistribution.DomainName": "console.local.invalid"}

    def substitute(self, name):
        if name in self.STAND_INS:
            return self.STAND_INS[name]
        if name.startswith("AWS::"):
            return {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}[name]
        if "." in name:
            return self.resolve({"Fn::GetAtt": name})
        return self.resolve({"Ref": name})

    def resolve(self, value):
        if isinstance(value, dict) and len(value) == 1 and self.is_intrinsic(next(iter(value))):
            (fn, arg), = value.items()
            if fn == "Ref":
                if arg == "AWS::NoValue":
                    return None
                if arg in self.physical:
                    return self.physical[arg]
                return self.param(arg)
            if fn == "Fn::GetAtt":
                logical, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                if attr == "Arn":
                    return self.arns[logical]
                if attr == "StreamArn":
                    return self.arns[logical + ".StreamArn"]
                raise KeyError(f"unsupported GetAtt {logical}.{attr}")
            if fn == "Fn::Sub":
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(self.substitute(m.group(1))), arg)
            if fn == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if fn == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.condition(cond) else no)
            if fn == "Fn::Join":
                sep, items = arg
                resolved = self.resolve(items)
                return sep.join(resolved if isinstance(resolved, list) else [resolved])
            if fn == "Condition":
                return self.condition(arg)
            if fn == "Fn::And":
                return all(self.resolve(x) for x in arg)
            if fn == "Fn::Or":
                return any(self.resolve(x) for x in arg)
            if fn == "Fn::Not":
                return not self.resolve(arg[0])
            if fn == "Fn::Equals":
                a, b = (self.resolve(x) for x in arg)
                return a == b
            raise KeyError(f"unsupported intrinsic {fn}")
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value


def create_table(ddb, name, props):
    args = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if key in props:
            args[key] = [
                {k: v for k, v in idx.items() if k in ("IndexName", "KeySchema", "Projection")}
                for idx in props[key]
            ]
    if "StreamSpecification" in props:
        args["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": props["StreamSpecification"]["StreamViewType"],
        }
    try:
        desc = ddb.create_table(**args)["TableDescription"]
    except ddb.exceptions.ResourceInUseException:
        desc = ddb.describe_table(TableName=name)["Table"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        try:
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        except Exception as e:  # already enabled on a re-run
            if "already enabled" not in str(e).lower():
                raise
    return desc


QUEUE_ATTRS = {
    "VisibilityTimeout": "VisibilityTimeout",
    "MessageRetentionPeriod": "MessageRetentionPeriod",
    "DelaySeconds": "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "MaximumMessageSize": "MaximumMessageSize",
    "FifoQueue": "FifoQueue",
    "ContentBasedDeduplication": "ContentBasedDeduplication",
}


# The Redis users' secrets, as the parameters an existing Redis's would be passed in: locally
# the stack's Redis plays the cache the template creates.
LOCAL_SECRET_PARAMETERS = {"RedisReaderSecret": "RedisReaderSecretArn", "RedisWriterSecret": "RedisWriterSecretArn"}


def redis_users(resources, r):
    """The template's ElastiCache users on the local Redis (their access strings, with
    passwords generated into secrets in moto's Secrets Manager), so each function connects as
    the user the template gives it. The `default` user stays the operator's locally (the
    tests, tools and `make cli`), as the `local` access key is for AWS calls."""
    users = {k: v for k, v in resources.items() if v["Type"] == "AWS::ElastiCache::User"}
    if not users:
        return
    import secrets as random_secrets
    import subprocess

    sm = boto3.client("secretsmanager")
    passwords = {}
    for logical, res in resources.items():
        if res["Type"] != "AWS::SecretsManager::Secret" or logical not in LOCAL_SECRET_PARAMETERS:
            continue
        gen = res["Properties"]["GenerateSecretString"]
        doc = json.loads(gen.get("SecretStringTemplate", "{}"))
        doc[gen["GenerateStringKey"]] = passwords[logical] = random_secrets.token_hex(20)
        arn = sm.create_secret(Name=f"{r.prefix}-{logical}", SecretString=json.dumps(doc))["ARN"]
        r.physical[logical] = r.arns[logical] = arn
        r.overrides[LOCAL_SECRET_PARAMETERS[logical]] = arn
    for logical, res in users.items():
        props = res["Properties"]
        if props["UserName"] == "default":
            continue
        access = r.resolve(props["AccessString"]).split()
        password_ref = props["AuthenticationMode"]["Passwords"][0]["Fn::Sub"]
        secret = re.search(r"\$\{(\w+)\}", password_ref).group(1)
        command = ["ACL", "SETUSER", props["UserName"], "reset", *access, ">" + passwords[secret]]
        subprocess.run(["redis-cli", "-e", "-u", os.environ["REDIS_URL"], *command], check=True, capture_output=True)
    # Kept across a Redis restart (the stack starts it with --aclfile), as a user group is.
    subprocess.run(["redis-cli", "-e", "-u", os.environ["REDIS_URL"], "ACL", "SAVE"], check=True, capture_output=True)


def other_secrets(resources, r):
    """The template's other generated secrets (the erasure key), in moto's Secrets Manager
    with a random value, so !Ref resolves to their ARN as in AWS."""
    import secrets as random_secrets

    sm = boto3.client("secretsmanager")
    for logical, res in resources.items():
        if res["Type"] != "AWS::SecretsManager::Secret" or logical in LOCAL_SECRET_PARAMETERS:
            continue
        if res.get("Condition") and not r.condition(res["Condition"]):
            continue
        gen = res["Properties"].get("GenerateSecretString", {})
        value = random_secrets.token_hex(int(gen.get("PasswordLength", 64)) // 2)
        arn = sm.create_secret(Name=f"{r.prefix}-{logical}", SecretString=value)["ARN"]
        r.physical[logical] = r.arns[logical] = arn


def function_env(resources, r, path):
    """Each function's own variables (the template's per-function Environment), which the
    shared local environment cannot carry: market_lambda::local_env reads them."""
    out = {}
    for logical, res in resources.items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        if res.get("Condition") and not r.condition(res["Condition"]):
            continue
        binary = res.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        variables = res.get("Properties", {}).get("Environment", {}).get("Variables")
        if binary and variables:
            out[binary] = {k: str(v) for k, v in r.resolve(variables).items() if v is not None}
    with open(path, "w") as f:
        json.dump(out, f, indent=2)


def main():
    template_path, env_path, prefix = sys.argv[1:4]
    template = plain(cfn_yaml.load(template_path))
    resources = template["Resources"]
    r = Resolver(template, prefix)
    ddb = boto3.client("dynamodb")
    sqs = boto3.client("sqs")

    tables = {k: v for k, v in resources.items() if v["Type"] == "AWS::DynamoDB::Table"}
    queues = {k: v for k, v in resources.items() if v["Type"] == "AWS::SQS::Queue"}

    for logical, res in tables.items():
        name = f"{prefix}-{logical}"
        desc = create_table(ddb, name, r.resolve(res["Properties"]))
        r.physical[logical] = name
        r.arns[logical] = desc["TableArn"]
        if desc.get("LatestStreamArn"):
            r.arns[logical + ".StreamArn"] = desc["LatestStreamArn"]

    # Queues first without redrive (DLQs must exist), then the redrive policies.
    for logical, res in queues.items():
        props = res.get("Properties", {})
        fifo = props.get("FifoQueue") is True
        name = f"{prefix}-{logical}" + (".fifo" if fifo else "")
        attrs = {QUEUE_ATTRS[k]: str(v).lower() if isinstance(v, bool) else str(r.resolve(v))
                 for k, v in props.items() if k in QUEUE_ATTRS}
        if os.environ.get("LOCAL_QUEUE_VISIBILITY_TIMEOUT") and "VisibilityTimeout" in attrs:
            attrs["VisibilityTimeout"] = os.environ["LOCAL_QUEUE_VISIBILITY_TIMEOUT"]
        url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        r.physical[logical] = url
        r.arns[logical] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for logical, res in queues.items():
        redrive = res.get("Properties", {}).get("RedrivePolicy")
        if redrive:
            policy = r.resolve(redrive)
            policy["maxReceiveCount"] = int(policy["maxReceiveCount"])
            sqs.set_queue_attributes(QueueUrl=r.physical[logical], Attributes={"RedrivePolicy": json.dumps(policy)})
    redis_users(resources, r)
    other_secrets(resources, r)

    env = r.resolve(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    for logical, arn in r.arns.items():
        if logical.endswith(".StreamArn"):
            env[logical.split(".")[0].upper() + "_STREAM_ARN"] = arn
    for logical in queues:
        env.setdefault(f"QUEUE_URL_{logical}", r.physical[logical])
    function_env_path = os.path.join(os.path.dirname(env_path), "function-env.json")
    function_env(resources, r, function_env_path)
    env["LOCAL_FUNCTION_ENV"] = function_env_path
    # Variables the stack already set (REDIS_URL: the local Redis) win over empty template
    # defaults (RedisUrl "" = "create a cache", which does not exist locally).
    with open(env_path) as f:
        present = {line.split("=", 1)[0] for line in f if "=" in line}
    with open(env_path, "a") as f:
        for k, v in env.items():
            if v == "" and k in present:
                continue
            f.write(f"{k}={v}\n")
    # What Lambda's event source mappings do in AWS, the local runner does from this file.
    sources = {"sqs": [], "streams": [], "schedules": []}
    for logical, res in resources.items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        if res.get("Condition") and not r.condition(res["Condition"]):
            continue  # e.g. the Amazon MQ bridge: locally the standalone bridge runs instead
        binary = res.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        for event in res.get("Properties", {}).get("Events", {}).values():
            props = event.get("Properties", {})
            failures = "ReportBatchItemFailures" in props.get("FunctionResponseTypes", [])
            if event.get("Type") == "SQS":
                queue = props["Queue"]["Fn::GetAtt"][0]
                sources["sqs"].append({
                    "function": binary,
                    "queue_url": r.physical[queue],
                    "queue_arn": r.arns[queue],
                    "batch_size": int(props.get("BatchSize", 10)),
                    "report_batch_item_failures": failures,
                })
            elif event.get("Type") in ("Schedule", "ScheduleV2"):
                expr = str(r.resolve(props.get("ScheduleExpression", props.get("Schedule", ""))))
                m = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expr)
                if not m:
                    raise ValueError(f"unsupported schedule {expr} for {binary}")
                unit = {"minute": 60, "hour": 3600, "day": 86400}[m.group(2).rstrip("s")]
                every = int(os.environ.get("LOCAL_SCHEDULE_SECONDS") or int(m.group(1)) * unit)
                sources["schedules"].append({"function": binary, "every_seconds": every})
            elif event.get("Type") == "DynamoDB":
                # Filters of the form {"eventName": [...]} are what the runner applies.
                names = []
                for f in props.get("FilterCriteria", {}).get("Filters", []):
                    names += json.loads(f["Pattern"]).get("eventName", [])
                on_failure = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
                on_failure_queue = on_failure["Fn::GetAtt"][0] if isinstance(on_failure, dict) else None
                sources["streams"].append({
                    "function": binary,
                    "stream_arn": r.resolve(props["Stream"]),
                    "batch_size": int(props.get("BatchSize", 100)),
                    "starting_position": props.get("StartingPosition", "LATEST"),
                    "maximum_retry_attempts": int(props.get("MaximumRetryAttempts", -1)),
                    "bisect_batch_on_function_error": bool(props.get("BisectBatchOnFunctionError", False)),
                    "report_batch_item_failures": failures,
                    "event_names": names,
                    "on_failure_queue_url": r.physical.get(on_failure_queue) if on_failure_queue else None,
                })
    # Every function's execution role as the SAM transform makes it, for local-aws.
    import local_iam
    some_table = next(iter(tables))
    prefix = r.arns[some_table][: r.arns[some_table].index(":table/") + len(":table/")]
    queue_arns = {r.physical[q]: r.arns[q] for q in queues}
    local_iam.write(template_path, r, os.path.join(os.path.dirname(env_path), "iam-policies.json"), queue_arns, prefix)
    with open(os.path.join(os.path.dirname(env_path), "event-sources.json"), "w") as f:
        json.dump(sources, f, indent=2)
    print(f"created {len(tables)} tables and {len(queues)} queues from {template_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
