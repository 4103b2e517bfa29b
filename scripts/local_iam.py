#!/usr/bin/env python3
"""IAM as AWS enforces it, for the local stack (SPEC invariant 13).

`policies(template_path, resolver)`: every function's execution role exactly as the SAM
transform generates it (samtranslator, offline: policy templates and event-source policies
expanded, AWS-managed policies the transform attaches replaced by their documented
DynamoDB/SQS statements), with every !GetAtt/!Sub resolved to the local stack's ARNs. The
identity of a function is its binary's name: locally each function signs its requests with
it (MARKET_LOCAL_IDENTITY), and `local-aws` (tools/local-aws) authorizes every request against
these statements before DynamoDB Local or SQS sees it.

`report POLICIES USAGE` (a file, or local-aws's usage URL): the least-privilege report of a run: per function the (action,
resource) pairs it used, the grants it never used, and every denied call (exit 1 if any).
"""
import json
import os
import sys

# The DynamoDB/SQS statements of the AWS-managed policies SAM attaches to function roles
# (their other statements - logs, X-Ray, ENIs - are not calls these services see).
MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": [
        {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], "Resource": "*"},
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole": [
        {"Effect": "Allow", "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"], "Resource": "*"},
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [],
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": [],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole": [],
}

# Who is not a function: the developer's and the tests' own tooling (admin access, as an
# operator's credentials would have).
OPERATOR_KEYS = ["local"]


class _Loader:
    """samtranslator asks for managed policy names -> ARNs; none are needed offline."""

    def load(self):
        return {}


def _listify(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _sam_roles(template_path):
    from cfnlint.decode import decode_str
    from samtranslator.translator.transform import transform

    with open(template_path) as f:
        template, _ = decode_str(f.read())
    template = json.loads(json.dumps(template, default=str))
    for res in template["Resources"].values():
        if res["Type"] == "AWS::Serverless::Function":
            res["Properties"]["CodeUri"] = "s3://local/code.zip"
    params = {k: "local" for k, p in template.get("Parameters", {}).items() if "Default" not in p}
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    out = transform(template, params, _Loader())
    return template, out["Resources"]


def policies(template_path, resolver):
    """{identity: {"function": logical id, "statements": [{effect, actions, resources}]}}."""
    template, resources = _sam_roles(template_path)
    identities = {}
    for logical, res in template["Resources"].items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        if res.get("Condition") and not resolver.condition(res["Condition"]):
            continue  # not deployed with these parameters (e.g. the Amazon MQ bridge locally)
        binary = res.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        role = resources.get(f"{logical}Role")
        if not binary or role is None:
            continue
        docs = [p["PolicyDocument"] for p in role["Properties"].get("Policies", [])]
        arns = []
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            # A policy of the template itself (`!Ref Policy`, possibly under `!If`).
            if isinstance(arn, dict) and "Fn::If" in arn:
                cond, yes, no = arn["Fn::If"]
                arn = yes if resolver.condition(cond) else no
            if isinstance(arn, dict) and arn.get("Ref") == "AWS::NoValue":
                continue
            own = _template_policy(template, arn)
            if own is not None:
                docs.append(own)
                continue
            arns.append(arn)
        docs += [{"Statement": MANAGED[arn]} for arn in arns if arn in MANAGED]
        unknown = [arn for arn in arns if arn not in MANAGED]
        if unknown:
            raise ValueError(f"{logical}: managed policies without a local expansion: {unknown}")
        identity = {"function": logical, "statements": _statements(logical, docs, resolver)}
        # A permissions boundary caps the role: a call needs its allow too.
        boundary = role["Properties"].get("PermissionsBoundary")
        if boundary is not None:
            document = _template_policy(template, boundary)
            if document is None:
                raise ValueError(f"{logical}: a permissions boundary that is not a managed policy of the template: {boundary}")
            identity["boundary"] = _statements(boundary["Ref"], [document], resolver)
        identities[binary] = identity
    # Identities the template defines for what runs outside Lambda (the self-hosted bridge).
    for logical, res in template["Resources"].items():
        identity = res.get("Metadata", {}).get("LocalIdentity")
        if res["Type"] == "AWS::IAM::ManagedPolicy" and identity:
            identities[identity] = {"function": logical, "statements": _statements(logical, [res["Properties"]["PolicyDocument"]], resolver)}
    return identities


def _template_policy(template, ref):
    """The document of `!Ref <a managed policy of the template>`, else None."""
    name = ref.get("Ref") if isinstance(ref, dict) else None
    policy = template["Resources"].get(name or "", {})
    return policy["Properties"]["PolicyDocument"] if policy.get("Type") == "AWS::IAM::ManagedPolicy" else None


def _statements(logical, docs, resolver):
    statements = []
    for doc in docs:
        for st in _listify(doc.get("Statement")):
            if isinstance(st, dict) and "Fn::If" in st:  # a statement under a condition
                st = resolver.resolve(st)
                if st is None:
                    continue
            # Only what DynamoDB, SQS and Secrets Manager decide; other services are not on
            # this machine.
            actions = [a for a in _listify(st.get("Action")) if isinstance(a, str) and a.split(":")[0] in ("dynamodb", "sqs", "secretsmanager", "*")]
            if not actions:
                continue
            resources_ = []
            for r in _listify(st.get("Resource")):
                resolved = resolver.resolve(r)
                if resolved is None:  # !Ref AWS::NoValue
                    continue
                for one in resolved if isinstance(resolved, list) else [resolved]:  # !Split
                    if not isinstance(one, str) or not one:
                        raise ValueError(f"{logical}: a resource that does not resolve to an ARN: {r}")
                    resources_.append(one)
            statements.append({"effect": st.get("Effect", "Allow"), "actions": actions, "resources": resources_})
    return statements


def tables(template_path, resolver):
    """{local table name: {"key": [hash, range], "gsis": [...]}} for local-aws's contention shim."""
    from cfnlint.decode import cfn_yaml

    template = json.loads(json.dumps(cfn_yaml.load(template_path), default=str))
    out = {}
    for logical, res in template["Resources"].items():
        if res["Type"] != "AWS::DynamoDB::Table":
            continue
        props = res["Properties"]
        out[resolver.physical[logical]] = {
            "key": [k["AttributeName"] for k in props["KeySchema"]],
            "gsis": [g["IndexName"] for g in props.get("GlobalSecondaryIndexes", [])],
            "lsis": [i["IndexName"] for i in props.get("LocalSecondaryIndexes", [])],
        }
    return out


def write(template_path, resolver, out_path, queue_arns, table_arn_prefix):
    doc = {
        "tables": tables(template_path, resolver),
        "operators": OPERATOR_KEYS,
        "identities": policies(template_path, resolver),
        # SQS requests name a queue by URL; IAM by ARN.
        "queue_arns": queue_arns,
        "table_arn_prefix": table_arn_prefix,
    }
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


def _matches(pattern, value):
    import fnmatch

    return fnmatch.fnmatchcase(value, pattern)


def report(policies_path, usage_path):
    with open(policies_path) as f:
        pol = json.load(f)
    if usage_path.startswith("http://"):
        import urllib.request

        with urllib.request.urlopen(usage_path, timeout=10) as f:
            usage = json.load(f)
    else:
        with open(usage_path) as f:
            usage = json.load(f)
    used = usage.get("used", {})
    denied = usage.get("denied", [])
    print("== least privilege: what each function used of its template policy (local-aws)")
    for identity in sorted(pol["identities"]):
        spec = pol["identities"][identity]
        pairs = used.get(identity, {})
        print(f"  {identity} ({spec['function']}): {sum(pairs.values())} calls")
        for pair in sorted(pairs):
            print(f"    used    {pair}  x{pairs[pair]}")
        for st in spec["statements"]:
            if st["effect"] != "Allow":
                continue
            for action in st["actions"]:
                for resource in st["resources"]:
                    if not any(_matches(action, p.split(" ", 1)[0]) and _matches(resource, p.split(" ", 1)[1]) for p in pairs):
                        print(f"    unused  {action} {resource}")
    others = {k: v for k, v in used.items() if k not in pol["identities"]}
    for identity, pairs in sorted(others.items()):
        print(f"  {identity} (operator): {sum(pairs.values())} calls")
    if denied:
        print(f"== {len(denied)} calls DENIED by a function's template policy (AWS would refuse them):")
        for d in denied[:50]:
            print(f"    {d}")
        return 1
    print("== no call denied")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "report":
        sys.exit(report(sys.argv[2], sys.argv[3]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
