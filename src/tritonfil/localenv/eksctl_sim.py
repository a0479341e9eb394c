"""eksctl simulator for the offline local environment: the console script ``tritonfil-eksctl-sim``.

Real eksctl cannot create clusters against moto: it drives CloudFormation stacks that launch EC2
instances. This speaks the subset of eksctl's command line that plugins/module_utils/eksctl.py uses,
with the same flags and the same JSON shapes, backed by moto's EKS and IAM APIs (boto3 to
AWS_ENDPOINT_URL):

  version
  get cluster --name N --region R --output json        -> [EKS Cluster, Go field names]
  get nodegroup --cluster N --region R --output json   -> [nodegroup Summary, as pkg/actions/nodegroup]
  create cluster --config-file F [--write-kubeconfig=false] [--timeout D]
  create nodegroup --config-file F [--include=G,...] [--exclude=G,...] [--timeout D]
  create iamserviceaccount --config-file F [--include=NS/NAME,...] [--exclude=...]
                           [--override-existing-serviceaccounts] [--approve] [--timeout D]
  get iamserviceaccount --cluster N --region R --output json  -> [ClusterIAMServiceAccount, json tags]
  utils associate-iam-oidc-provider (--cluster N --region R | --config-file F) [--approve]
  scale nodegroup --cluster N --name NG --nodes D --nodes-min m --nodes-max M [--wait] [--timeout D]
  delete cluster --name N [--wait] [--timeout D]
  utils write-kubeconfig --cluster N --kubeconfig PATH

What it simulates: the EKS control plane and managed node groups as moto records them (version,
scaling, instance type, AMI type, labels, taints), the IRSA roles (an IAM role per service account
with the attachPolicy as inline policy and a trust policy on the cluster's OIDC issuer, tagged like
eksctl's IRSA stacks; `get iamserviceaccount` lists them as eksctl lists the stacks), the IAM OIDC
provider. Like eksctl, the config-file commands refuse --region/--cluster, `create nodegroup` and
`create iamserviceaccount` refuse an --include that matches an existing one, `create iamserviceaccount`
needs the OIDC provider, and the commands taking --approve only plan without it. What it does
not: CloudFormation stacks, VPC/subnets, EC2 instances; the Kubernetes API behind the cluster is the
local kwok cluster (its kubeconfig, from TRITONFIL_LOCAL_STATE/endpoints.json, is what
write-kubeconfig writes, renamed after the cluster), whose nodes do not follow scaling.
Errors print like eksctl's (`Error: ...` on stderr, rc 1). EKSCTL_SIM_CONTROL_PLANE_PAUSE=SECONDS makes
`create cluster` pause after the control plane (real eksctl waits minutes there), so a test can interrupt it
where an interrupted real `eksctl create cluster` leaves a cluster without node groups and IRSA.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import ClientError

from tritonfil.localenv.env import default_state_dir

ACCOUNT_ROLE = "arn:aws:iam::123456789012:role/"
SIM_VERSION = "0.215.0-tritonfil-sim"


class SimError(Exception):
    pass


def _go_json(value: Any) -> Any:
    """boto3's camelCase response -> the Go SDK struct field names eksctl's JSON printer emits."""
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: _go_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_json(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def clients(region: str) -> tuple[Any, Any]:
    kwargs: dict[str, Any] = {"region_name": region}
    if os.environ.get("AWS_ENDPOINT_URL"):
        kwargs["endpoint_url"] = os.environ["AWS_ENDPOINT_URL"]
    return boto3.client("eks", **kwargs), boto3.client("iam", **kwargs)


def region_of(args: argparse.Namespace) -> str:
    region = getattr(args, "region", None) or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise SimError("--region is required (or AWS_REGION)")
    return region


def describe(eks: Any, name: str) -> dict[str, Any]:
    try:
        return eks.describe_cluster(name=name)["cluster"]
    except ClientError as exc:
        raise SimError(
            f'unable to describe control plane "{name}": operation error EKS: DescribeCluster, '
            f"{exc.response['Error']['Code']}: {exc.response['Error']['Message']}"
        ) from exc


def nodegroup_summary(eks: Any, cluster: str, name: str) -> dict[str, Any]:
    ng = eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]
    scaling = ng["scalingConfig"]
    return {
        "StackName": f"eksctl-{cluster}-nodegroup-{name}",
        "Cluster": cluster,
        "Name": name,
        "Status": ng["status"],
        "MaxSize": scaling["maxSize"],
        "MinSize": scaling["minSize"],
        "DesiredCapacity": scaling["desiredSize"],
        "InstanceType": ",".join(ng.get("instanceTypes") or []),
        "ImageID": ng.get("amiType", ""),
        "CreationTime": _go_json(ng["createdAt"]),
        "NodeInstanceRoleARN": ng["nodeRole"],
        "AutoScalingGroupName": ",".join(g["name"] for g in (ng.get("resources") or {}).get("autoScalingGroups", [])),
        "Version": ng.get("version", ""),
        "Type": "managed",
    }


def cmd_get_cluster(args: argparse.Namespace) -> None:
    eks, _ = clients(region_of(args))
    print(json.dumps([_go_json(describe(eks, args.name))], indent=4))


def cmd_get_nodegroup(args: argparse.Namespace) -> None:
    eks, _ = clients(region_of(args))
    describe(eks, args.cluster)
    names = eks.list_nodegroups(clusterName=args.cluster)["nodegroups"]
    summaries = [nodegroup_summary(eks, args.cluster, n) for n in sorted(names) if not args.name or n == args.name]
    print(json.dumps(summaries, indent=4))


def _ami_type(ng: dict[str, Any]) -> str:
    family = ng.get("amiFamily", "AmazonLinux2023")
    gpu = ng["instanceType"].split(".")[0][:1] in ("g", "p")
    if family == "Bottlerocket":
        return "BOTTLEROCKET_x86_64_NVIDIA" if gpu else "BOTTLEROCKET_x86_64"
    # eksctl picks the NVIDIA variant of AL2023 for GPU instance types.
    return "AL2023_x86_64_NVIDIA" if gpu else "AL2023_x86_64_STANDARD"


def _irsa_role(cluster: str, sa: dict[str, Any]) -> str:
    meta = sa["metadata"]
    return sa.get("roleName") or f"eksctl-{cluster}-addon-iamserviceaccount-{meta['namespace']}-{meta['name']}"[:64]


def _sa_name(sa: dict[str, Any]) -> str:
    meta = sa.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


SA_NAME_TAG = "alpha.eksctl.io/iamserviceaccount-name"  # api.IAMServiceAccountNameTag
CLUSTER_NAME_TAG = "alpha.eksctl.io/cluster-name"


def load_config(args: argparse.Namespace) -> dict[str, Any]:
    """The ClusterConfig of --config-file; like eksctl, --region/--cluster/--name are refused with it."""
    for flag in ("region", "cluster", "name"):
        if getattr(args, flag, None):
            raise SimError(f"cannot use --{flag} when --config-file/-f is set")
    config = yaml.safe_load(Path(args.config_file).read_text())
    if config.get("kind") != "ClusterConfig" or config.get("apiVersion") != "eksctl.io/v1alpha5":
        raise SimError(f'loading config file "{args.config_file}": not an eksctl.io/v1alpha5 ClusterConfig')
    for ng in config.get("managedNodeGroups") or []:
        if not ng["minSize"] <= ng["desiredCapacity"] <= ng["maxSize"]:
            raise SimError(
                f"cannot create nodegroup {ng['name']}: minSize ({ng['minSize']}) <= desiredCapacity "
                f"({ng['desiredCapacity']}) <= maxSize ({ng['maxSize']}) does not hold"
            )
    return config


def operable(eks: Any, name: str, region: str) -> dict[str, Any]:
    """The cluster, refused like eksctl's CanOperate when it is CREATING, DELETING or FAILED."""
    cluster = describe(eks, name)
    if cluster["status"] in ("CREATING", "DELETING", "FAILED"):
        raise SimError(
            f'cannot perform Kubernetes API operations on cluster "{name}" in "{region}" region due to status '
            f'"{cluster["status"]}"'
        )
    return cluster


def _issuer_host(cluster: dict[str, Any]) -> str:
    return ((cluster.get("identity") or {}).get("oidc") or {}).get("issuer", "").split("://", 1)[-1]


def oidc_provider_exists(iam: Any, cluster: dict[str, Any]) -> bool:
    host = _issuer_host(cluster)
    return bool(host) and any(
        p["Arn"].endswith(f"oidc-provider/{host}")
        for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    )


def create_oidc_provider(iam: Any, cluster: dict[str, Any]) -> None:
    issuer = ((cluster.get("identity") or {}).get("oidc") or {}).get("issuer", "")
    iam.create_open_id_connect_provider(
        Url=issuer, ClientIDList=["sts.amazonaws.com"], ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]
    )


def create_nodegroup(eks: Any, name: str, version: str, ng: dict[str, Any]) -> None:
    eks.create_nodegroup(
        clusterName=name,
        nodegroupName=ng["name"],
        version=version,
        scalingConfig={"minSize": ng["minSize"], "desiredSize": ng["desiredCapacity"], "maxSize": ng["maxSize"]},
        diskSize=ng.get("volumeSize", 80),
        subnets=["subnet-eksctl-sim"],
        instanceTypes=[ng["instanceType"]],
        amiType=_ami_type(ng),
        nodeRole=f"{ACCOUNT_ROLE}eksctl-{name}-nodegroup-{ng['name']}-NodeInstanceRole",
        labels={**(ng.get("labels") or {}), "alpha.eksctl.io/nodegroup-name": ng["name"]},
        taints=[
            {"key": t["key"], "value": t.get("value", ""), "effect": t.get("effect", "NoSchedule")
             .replace("NoSchedule", "NO_SCHEDULE").replace("NoExecute", "NO_EXECUTE")
             .replace("PreferNoSchedule", "PREFER_NO_SCHEDULE")}
            for t in ng.get("taints") or []
        ],
        tags={"alpha.eksctl.io/nodegroup-name": ng["name"], "alpha.eksctl.io/nodegroup-type": "managed"},
    )  # fmt: skip
    # moto drops updateConfig on create; EKS always has one (see docs/KNOWN: eks_nodegroup).
    eks.update_nodegroup_config(clusterName=name, nodegroupName=ng["name"], updateConfig={"maxUnavailable": 1})


def create_irsa_role(iam: Any, name: str, cluster: dict[str, Any], sa: dict[str, Any]) -> None:
    """The IAM role of one iam.serviceAccounts entry (eksctl: one CloudFormation stack per entry). Like a
    roleOnly entry, no Kubernetes ServiceAccount is made (the local cluster is not the EKS cluster)."""
    meta_sa = sa["metadata"]
    host = _issuer_host(cluster)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{host}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{host}:sub": f"system:serviceaccount:{meta_sa.get('namespace') or 'default'}:"
                        f"{meta_sa['name']}",
                        f"{host}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }
    role = _irsa_role(name, sa)
    iam.create_role(
        RoleName=role,
        AssumeRolePolicyDocument=json.dumps(trust),
        Tags=[{"Key": CLUSTER_NAME_TAG, "Value": name}, {"Key": SA_NAME_TAG, "Value": _sa_name(sa)}],
    )
    if sa.get("attachPolicy"):
        iam.put_role_policy(RoleName=role, PolicyName="Policy1", PolicyDocument=json.dumps(sa["attachPolicy"]))


def irsa_roles(iam: Any, name: str) -> dict[str, dict[str, Any]]:
    """NAMESPACE/NAME -> IAM role, for the IRSA roles of cluster NAME (what eksctl finds as IRSA stacks)."""
    found = {}
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role["RoleName"])["Tags"]}
            if tags.get(CLUSTER_NAME_TAG) == name and tags.get(SA_NAME_TAG):
                found[tags[SA_NAME_TAG]] = role
    return found


def select(names: list[str], include: str | None, exclude: str | None, existing: set[str], resource: str) -> list[str]:
    """eksctl's include/exclude filter (pkg/ctl/cmdutils/filter): globs must match something in the config; an
    existing one matching --include is an error; existing ones are excluded."""
    includes = [g for g in (include or "").split(",") if g]
    excludes = [g for g in (exclude or "").split(",") if g]
    if includes and not any(fnmatch.fnmatchcase(n, g) for n in names for g in includes):
        raise SimError(f"no {resource}s match include glob filter specification: {','.join(includes)!r}")
    for n in sorted(existing):
        if any(fnmatch.fnmatchcase(n, g) for g in includes):
            raise SimError(
                f'existing {resource} "{n}" should be excluded, but matches include filter: {",".join(includes)}'
            )
    chosen = [
        n
        for n in names
        if (not includes or any(fnmatch.fnmatchcase(n, g) for g in includes))
        and not any(fnmatch.fnmatchcase(n, g) for g in excludes)
        and n not in existing
    ]
    if existing & set(names):
        ex = sorted(existing & set(names))
        print(f"[ℹ]  {len(ex)} existing {resource}(s) ({', '.join(ex)}) will be excluded", file=sys.stderr)
    if chosen:
        verb = "was" if len(chosen) == 1 else "were"
        plural = "" if len(chosen) == 1 else "s"
        print(f"[ℹ]  {len(chosen)} {resource}{plural} ({', '.join(sorted(chosen))}) {verb} included "
              "(based on the include/exclude rules)", file=sys.stderr)  # fmt: skip
    return chosen


def control_plane_settings(config: dict[str, Any]) -> dict[str, Any]:
    """EKS CreateCluster parameters of what eksctl's cluster stack sets from the config: endpoint access and
    public CIDRs (vpc.clusterEndpoints, vpc.publicAccessCIDRs; eksctl's defaults public only, any address),
    control-plane logging (cloudWatch.clusterLogging) and envelope encryption of Secrets (secretsEncryption)."""
    vpc = config.get("vpc") or {}
    endpoints = vpc.get("clusterEndpoints") or {}
    vpc_config: dict[str, Any] = {
        "subnetIds": [],
        "endpointPublicAccess": endpoints.get("publicAccess", True) is not False,
        "endpointPrivateAccess": bool(endpoints.get("privateAccess", False)),
        "publicAccessCidrs": list(vpc.get("publicAccessCIDRs") or ["0.0.0.0/0"]),
    }
    types = ((config.get("cloudWatch") or {}).get("clusterLogging") or {}).get("enableTypes") or []
    every = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
    enabled = every if {"all", "*"} & set(types) else [t for t in every if t in types]
    logging = {"clusterLogging": [{"types": enabled, "enabled": True}] if enabled else []}
    logging["clusterLogging"] += [{"types": [t for t in every if t not in enabled], "enabled": False}]
    settings: dict[str, Any] = {"resourcesVpcConfig": vpc_config, "logging": logging}
    key = (config.get("secretsEncryption") or {}).get("keyARN")
    if key:
        settings["encryptionConfig"] = [{"resources": ["secrets"], "provider": {"keyArn": key}}]
    return settings


def cmd_create_cluster(args: argparse.Namespace) -> None:
    config = load_config(args)
    meta = config["metadata"]
    name, region = meta["name"], meta["region"]
    eks, iam = clients(region)
    if name in eks.list_clusters()["clusters"]:
        raise SimError(f'creating CloudFormation stack "eksctl-{name}-cluster": AlreadyExistsException: {name}')
    print(f"[ℹ]  eksctl-sim {SIM_VERSION}: creating EKS cluster {name!r} in {region!r} (moto)", file=sys.stderr)
    cluster = eks.create_cluster(
        name=name,
        version=str(meta["version"]),
        roleArn=f"{ACCOUNT_ROLE}eksctl-{name}-cluster-ServiceRole",
        tags={CLUSTER_NAME_TAG: name, "eksctl.cluster.k8s.io/v1alpha1/cluster-name": name},
        **control_plane_settings(config),
    )["cluster"]
    # eksctl's order: the control plane (cluster stack), then the OIDC provider, IRSA stacks and node group
    # stacks. An interrupted run leaves a cluster without them; `create nodegroup`/`create iamserviceaccount`/
    # `utils associate-iam-oidc-provider` add them afterwards. Real eksctl spends minutes between the two;
    # EKSCTL_SIM_CONTROL_PLANE_PAUSE (seconds, default 0) stands for that, so a test can interrupt there.
    print(f'[ℹ]  waiting for CloudFormation stack "eksctl-{name}-cluster"', file=sys.stderr, flush=True)
    time.sleep(float(os.environ.get("EKSCTL_SIM_CONTROL_PLANE_PAUSE") or 0))
    iam_config = config.get("iam") or {}
    if iam_config.get("serviceAccounts") and not iam_config.get("withOIDC"):
        raise SimError("iam.withOIDC must be enabled to create iam.serviceAccounts")
    if iam_config.get("withOIDC") and _issuer_host(cluster):
        create_oidc_provider(iam, cluster)
    for sa in iam_config.get("serviceAccounts") or []:
        create_irsa_role(iam, name, cluster, sa)
    for ng in config.get("managedNodeGroups") or []:
        create_nodegroup(eks, name, str(meta["version"]), ng)
    print(f'[✔]  EKS cluster "{name}" in "{region}" region is ready', file=sys.stderr)


def cmd_create_nodegroup(args: argparse.Namespace) -> None:
    config = load_config(args)
    meta = config["metadata"]
    name, region = meta["name"], meta["region"]
    eks, _ = clients(region)
    cluster = operable(eks, name, region)
    configured = [ng["name"] for ng in config.get("managedNodeGroups") or []]
    existing = set(eks.list_nodegroups(clusterName=name)["nodegroups"])
    chosen = select(configured, args.include, args.exclude, existing, "nodegroup")
    for ng in config.get("managedNodeGroups") or []:
        if ng["name"] in chosen:
            print(f'[ℹ]  creating managed nodegroup "{ng["name"]}" in cluster "{name}"', file=sys.stderr)
            create_nodegroup(eks, name, str(meta.get("version") or cluster["version"]), ng)
    if chosen:
        print(f'[✔]  created {len(chosen)} managed nodegroup(s) in cluster "{name}"', file=sys.stderr)
    else:
        print("[ℹ]  no nodegroups to create", file=sys.stderr)


def cmd_create_iamserviceaccount(args: argparse.Namespace) -> None:
    config = load_config(args)
    meta = config["metadata"]
    name, region = meta["name"], meta["region"]
    sas = (config.get("iam") or {}).get("serviceAccounts")
    if not sas:
        raise SimError(f"'iam.serviceAccounts' is not defined in {args.config_file!r}")
    eks, iam = clients(region)
    cluster = operable(eks, name, region)
    if not oidc_provider_exists(iam, cluster):
        print(f"[!]  no IAM OIDC provider associated with cluster, try 'eksctl utils associate-iam-oidc-provider "
              f"--region={region} --cluster={name}'", file=sys.stderr)  # fmt: skip
        raise SimError("unable to create iamserviceaccount(s) without IAM OIDC provider enabled")
    existing = set(irsa_roles(iam, name))
    chosen = select([_sa_name(sa) for sa in sas], args.include, args.exclude, existing, "iamserviceaccount")
    for sa in sas:
        if _sa_name(sa) not in chosen:
            continue
        if not args.approve:
            print(f'[ℹ]  (plan) would create IAM role for serviceaccount "{_sa_name(sa)}"', file=sys.stderr)
            continue
        print(f'[ℹ]  creating IAM role for serviceaccount "{_sa_name(sa)}"', file=sys.stderr)
        create_irsa_role(iam, name, cluster, sa)
    if chosen and not args.approve:
        print("[!]  no changes were applied, run again with '--approve' to apply the changes", file=sys.stderr)


def cmd_get_iamserviceaccount(args: argparse.Namespace) -> None:
    region = region_of(args)
    eks, iam = clients(region)
    operable(eks, args.cluster, region)
    out = []
    for sa_name, role in sorted(irsa_roles(iam, args.cluster).items()):
        namespace, _, sa = sa_name.partition("/")
        if (args.name and args.name != sa) or (args.namespace and args.namespace != namespace):
            continue
        out.append(
            {
                "metadata": {"name": sa, "namespace": namespace},
                "status": {
                    "roleARN": role["Arn"],
                    "stackName": f"eksctl-{args.cluster}-addon-iamserviceaccount-{namespace}-{sa}",
                    "tags": {SA_NAME_TAG: sa_name},  # eksctl keeps only the last stack tag (iam.go)
                    "capabilities": ["CAPABILITY_IAM"],
                },
            }
        )
    print(json.dumps(out, indent=4))


def cmd_associate_oidc(args: argparse.Namespace) -> None:
    if args.config_file:
        config = load_config(args)
        name, region = config["metadata"]["name"], config["metadata"]["region"]
        if not (config.get("iam") or {}).get("withOIDC"):
            raise SimError(f"'iam.withOIDC' is not enabled in {args.config_file!r}")
    else:
        if not args.cluster:
            raise SimError("--cluster must be set")
        name, region = args.cluster, region_of(args)
    eks, iam = clients(region)
    cluster = operable(eks, name, region)
    if oidc_provider_exists(iam, cluster):
        print(f'[ℹ]  IAM Open ID Connect provider is already associated with cluster "{name}" in "{region}"',
              file=sys.stderr)  # fmt: skip
        return
    if not args.approve:
        print(f'[ℹ]  (plan) would create IAM Open ID Connect provider for cluster "{name}" in "{region}"',
              file=sys.stderr)  # fmt: skip
        print("[!]  no changes were applied, run again with '--approve' to apply the changes", file=sys.stderr)
        return
    print(f'[ℹ]  will create IAM Open ID Connect provider for cluster "{name}" in "{region}"', file=sys.stderr)
    create_oidc_provider(iam, cluster)
    eks.tag_resource(resourceArn=cluster["arn"], tags={"alpha.eksctl.io/cluster-oidc-enabled": "true"})
    print(f'[✔]  created IAM Open ID Connect provider for cluster "{name}" in "{region}"', file=sys.stderr)


def cmd_scale_nodegroup(args: argparse.Namespace) -> None:
    eks, _ = clients(region_of(args))
    describe(eks, args.cluster)
    current = eks.describe_nodegroup(clusterName=args.cluster, nodegroupName=args.name)["nodegroup"]["scalingConfig"]
    wanted = {
        "minSize": current["minSize"] if args.nodes_min < 0 else args.nodes_min,
        "desiredSize": args.nodes,
        "maxSize": current["maxSize"] if args.nodes_max < 0 else args.nodes_max,
    }
    if not wanted["minSize"] <= wanted["desiredSize"] <= wanted["maxSize"]:
        raise SimError(
            f"the number of nodes must be within range of min nodes and max nodes "
            f"({wanted['minSize']} <= {wanted['desiredSize']} <= {wanted['maxSize']} does not hold)"
        )
    eks.update_nodegroup_config(clusterName=args.cluster, nodegroupName=args.name, scalingConfig=wanted)
    print(f'[ℹ]  nodegroup "{args.name}" has been scaled', file=sys.stderr)


def cmd_delete_cluster(args: argparse.Namespace) -> None:
    eks, iam = clients(region_of(args))
    cluster = describe(eks, args.name)
    for ng in eks.list_nodegroups(clusterName=args.name)["nodegroups"]:
        eks.delete_nodegroup(clusterName=args.name, nodegroupName=ng)
    prefix = f"eksctl-{args.name}-addon-iamserviceaccount-"
    for role in iam.list_roles()["Roles"]:
        tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role["RoleName"])["Tags"]}
        if role["RoleName"].startswith(prefix) or tags.get("alpha.eksctl.io/cluster-name") == args.name:
            for policy in iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]:
                iam.delete_role_policy(RoleName=role["RoleName"], PolicyName=policy)
            iam.delete_role(RoleName=role["RoleName"])
    issuer = ((cluster.get("identity") or {}).get("oidc") or {}).get("issuer", "")
    host = issuer.split("://", 1)[-1]
    for provider in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
        if host and provider["Arn"].endswith(f"oidc-provider/{host}"):
            iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=provider["Arn"])
    eks.delete_cluster(name=args.name)
    print(f'[✔]  all cluster resources were deleted ("{args.name}")', file=sys.stderr)


def cmd_write_kubeconfig(args: argparse.Namespace) -> None:
    region = region_of(args)
    eks, _ = clients(region)
    describe(eks, args.cluster)
    endpoints = default_state_dir() / "endpoints.json"
    if not endpoints.exists():
        raise SimError(f"no local environment: {endpoints} does not exist (run `tritonfil local up`)")
    source = yaml.safe_load(Path(json.loads(endpoints.read_text())["kubeconfig"]).read_text())
    full = f"{args.cluster}.{region}.eksctl.io"
    context = f"eksctl@{full}"
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": full, "cluster": source["clusters"][0]["cluster"]}],
        "users": [{"name": context, "user": source["users"][0]["user"]}],
        "contexts": [{"name": context, "context": {"cluster": full, "user": context}}],
        "current-context": context,
    }
    path = Path(os.path.expanduser(args.kubeconfig))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(kubeconfig, f, sort_keys=False)
    print(f'[✔]  saved kubeconfig as "{path}"', file=sys.stderr)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="eksctl", description=__doc__.splitlines()[0])
    verbs = top.add_subparsers(dest="verb", required=True)
    verbs.add_parser("version").set_defaults(func=lambda _a: print(SIM_VERSION))

    def sub(verb: str, noun: str, func: Any) -> argparse.ArgumentParser:
        group = verbs.choices.get(verb) or verbs.add_parser(verb)
        if not hasattr(group, "_nouns"):
            group._nouns = group.add_subparsers(dest="noun", required=True)  # type: ignore[attr-defined]
        p = group._nouns.add_parser(noun)  # type: ignore[attr-defined]
        p.add_argument("--region", "-r")
        p.add_argument("--timeout")
        p.add_argument("--verbose", "-v")
        p.set_defaults(func=func)
        return p

    p = sub("get", "cluster", cmd_get_cluster)
    p.add_argument("--name", "-n", required=True)
    p.add_argument("--output", "-o", choices=["json"], required=True)
    p = sub("get", "nodegroup", cmd_get_nodegroup)
    p.add_argument("--cluster", "-c", required=True)
    p.add_argument("--name", "-n")
    p.add_argument("--output", "-o", choices=["json"], required=True)
    p = sub("create", "cluster", cmd_create_cluster)
    p.add_argument("--config-file", "-f", required=True)
    p.add_argument("--write-kubeconfig", choices=["false"], required=True)
    p = sub("create", "nodegroup", cmd_create_nodegroup)
    p.add_argument("--config-file", "-f", required=True)
    p.add_argument("--cluster", "-c")  # refused with --config-file, as by eksctl
    p.add_argument("--include")
    p.add_argument("--exclude")
    p = sub("create", "iamserviceaccount", cmd_create_iamserviceaccount)
    p.add_argument("--config-file", "-f", required=True)
    p.add_argument("--cluster", "-c")
    p.add_argument("--include")
    p.add_argument("--exclude")
    p.add_argument("--override-existing-serviceaccounts", action="store_true")
    p.add_argument("--approve", action="store_true")
    p = sub("get", "iamserviceaccount", cmd_get_iamserviceaccount)
    p.add_argument("--cluster", "-c", required=True)
    p.add_argument("--name")
    p.add_argument("--namespace")
    p.add_argument("--output", "-o", choices=["json"], required=True)
    p = sub("utils", "associate-iam-oidc-provider", cmd_associate_oidc)
    p.add_argument("--cluster", "-c")
    p.add_argument("--config-file", "-f")
    p.add_argument("--approve", action="store_true")
    p = sub("scale", "nodegroup", cmd_scale_nodegroup)
    p.add_argument("--cluster", "-c", required=True)
    p.add_argument("--name", "-n", required=True)
    p.add_argument("--nodes", "-N", type=int, required=True)
    p.add_argument("--nodes-min", "-m", type=int, default=-1)
    p.add_argument("--nodes-max", "-M", type=int, default=-1)
    p.add_argument("--wait", "-w", action="store_true")
    p = sub("delete", "cluster", cmd_delete_cluster)
    p.add_argument("--name", "-n", required=True)
    p.add_argument("--wait", "-w", action="store_true")
    p = sub("utils", "write-kubeconfig", cmd_write_kubeconfig)
    p.add_argument("--cluster", "-c", required=True)
    p.add_argument("--kubeconfig", required=True)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except SimError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except ClientError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
