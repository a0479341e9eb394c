#!/usr/bin/python
# Apache License 2.0 (see galaxy.yml); Copyright: tritonfil.eks contributors

DOCUMENTATION = r"""
module: eksctl_cluster
short_description: Create, scale or delete an EKS cluster with managed node groups through eksctl
description:
  - Renders an eksctl C(ClusterConfig) (C(eksctl.io/v1alpha5)) from the options, or takes one as O(config),
    and makes the cluster match it.
  - When the cluster is missing it runs C(eksctl create cluster --config-file).
  - When it exists (after waiting while it is C(CREATING), as eksctl's own waiters would), what it lacks is
    created, as an interrupted C(eksctl create cluster) leaves it (the control plane first, the rest after),
    all with the same rendered ClusterConfig - the IAM OIDC provider
    (C(eksctl utils associate-iam-oidc-provider --config-file F --approve); detected with the same command
    in plan mode), IRSA service accounts or roles missing from C(eksctl get iamserviceaccount)
    (C(eksctl create iamserviceaccount --config-file F --include=NS/NAME --override-existing-serviceaccounts
    --approve)), and managed node groups missing from C(eksctl get nodegroup)
    (C(eksctl create nodegroup --config-file F --include=NAME)); managed node groups whose
    C(minSize)/C(desiredCapacity)/C(maxSize) differ are scaled with C(eksctl scale nodegroup). Nothing else is
    changed. Changing what cannot be changed in place (the Kubernetes version, a node group's instance type)
    fails with a message such as C(Cannot modify version of existing cluster NAME); so does a cluster in status
    C(DELETING) or C(FAILED).
  - With O(state=absent) it runs C(eksctl delete cluster); a missing cluster is a no-op.
  - Writes the kubeconfig (C(eksctl utils write-kubeconfig)) to O(kubeconfig), mode 0600, reporting a change
    only when its content changes.
version_added: 0.1.0
author:
  - tritonfil.eks maintainers (!UNKNOWN)
extends_documentation_fragment:
  - tritonfil.eks.eksctl
options:
  name:
    description:
      - Cluster name.
    type: str
    required: true
  state:
    description:
      - Whether the cluster should exist.
    type: str
    choices: [present, absent]
    default: present
  config:
    description:
      - A complete ClusterConfig to use instead of rendering one from O(version), O(nodegroups), O(with_oidc)
        and O(service_accounts). Its C(metadata.name) and C(metadata.region) must equal O(name) and O(region).
    type: dict
  version:
    description:
      - EKS Kubernetes version, for example C(1.33).
      - Required with O(state=present) unless O(config) is given.
    type: str
  nodegroups:
    description:
      - Managed node groups.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Node group name.
        type: str
        required: true
      instance_type:
        description: EC2 instance type.
        type: str
        required: true
      min_size:
        description: Minimum node count.
        type: int
        required: true
      desired_capacity:
        description: Desired node count.
        type: int
        required: true
      max_size:
        description: Maximum node count.
        type: int
        required: true
      volume_size:
        description: Root volume size, GiB.
        type: int
        default: 80
      ami_family:
        description:
          - AMI family. For GPU instance types eksctl picks the NVIDIA variant of C(AmazonLinux2023) itself.
        type: str
        default: AmazonLinux2023
      labels:
        description: Kubernetes labels of the nodes.
        type: dict
        default: {}
      taints:
        description: Taints of the nodes (C(key), C(value), C(effect)).
        type: list
        elements: dict
        default: []
      ssh_allow:
        description: Allow SSH to the nodes.
        type: bool
        default: false
      volume_encrypted:
        description:
          - Encrypt the root volumes (EBS encryption; C(volumeEncrypted)).
        type: bool
        default: true
      volume_kms_key_id:
        description:
          - KMS key of the volume encryption (C(volumeKmsKeyID)); the account's default EBS key when omitted.
        type: str
      disable_pod_imds:
        description:
          - Keep pods from the node's instance metadata (C(disablePodIMDS)) - eksctl then requires IMDSv2 with a
            response hop limit of 1, so a pod on the pod network (one hop further) gets no token and so never the node
            role's credentials. Host-network pods (the VPC CNI, kube-proxy) still reach it.
          - Pods that need AWS use IRSA. Set false only for a workload that must read instance metadata.
        type: bool
        default: true
  with_oidc:
    description:
      - Create the IAM OIDC provider (needed for IAM roles for service accounts).
    type: bool
    default: true
  service_accounts:
    description:
      - IAM roles for service accounts (IRSA), each C(namespace), C(name) and C(attach_policy) (an IAM policy document);
        optional C(role_name) (the IAM role name) and C(role_only) (create only the IAM role, not the ServiceAccount,
        when something else such as a Helm chart owns the ServiceAccount).
    type: list
    elements: dict
    default: []
  cluster_logging:
    description:
      - Control-plane log types sent to CloudWatch Logs (C(cloudWatch.clusterLogging.enableTypes)), from C(api),
        C(audit), C(authenticator), C(controllerManager), C(scheduler) (or C(all)). An empty list turns logging off.
      - Applied when the cluster is created; on an existing cluster a difference is reported as a warning
        naming the eksctl command that changes it.
    type: list
    elements: str
    default: [api, audit, authenticator]
  endpoint_public_access:
    description:
      - Serve the Kubernetes API on a public endpoint (C(vpc.clusterEndpoints.publicAccess)). With false the API is
        reachable only inside the VPC, so this module and every later Kubernetes task must run there.
    type: bool
    default: true
  endpoint_private_access:
    description:
      - Serve the Kubernetes API inside the VPC too (C(vpc.clusterEndpoints.privateAccess)), so that nodes and pods
        reach it without leaving the VPC.
    type: bool
    default: true
  public_access_cidrs:
    description:
      - CIDRs allowed to reach the public endpoint (C(vpc.publicAccessCIDRs)). Empty leaves EKS's default, any
        address (C(0.0.0.0/0)).
    type: list
    elements: str
    default: []
  secrets_kms_key_arn:
    description:
      - KMS key ARN for envelope encryption of Kubernetes Secrets (C(secretsEncryption.keyARN)). Cannot be removed
        once set.
    type: str
  tags:
    description:
      - Tags of the cluster's CloudFormation stacks (C(metadata.tags)), which CloudFormation puts on what they
        create (VPC, subnets, security groups), e.g. C(karpenter.sh/discovery) for Karpenter's subnet and security
        group selectors. Applied at creation.
    type: dict
    default: {}
  kubeconfig:
    description:
      - Write the cluster's kubeconfig to this path (mode 0600). Not written when omitted or O(state=absent).
    type: path
  wait:
    description:
      - Wait for scaling and deletion to finish (creation always waits).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds eksctl may wait for a long-running operation (its C(--timeout)).
    type: int
    default: 1800
attributes:
  check_mode:
    support: full
    description:
      - Reads the cluster and reports the predicted change (and diff) without running create, scale or delete
        (a cluster still C(CREATING) is not waited for; the plan then says it would wait).
  diff_mode:
    support: full
    description:
      - Before/after of the version, each node group's instance type and sizes, and (when the config has them)
        whether the IAM OIDC provider exists (C(iam_oidc_provider)) and the IRSA service accounts
        (C(service_accounts), NAMESPACE/NAME).
"""

EXAMPLES = r"""
- name: EKS cluster with one GPU node group and IRSA for Triton
  tritonfil.eks.eksctl_cluster:
    name: triton
    region: us-east-1
    version: "1.33"
    nodegroups:
      - name: gpu
        instance_type: g4dn.xlarge
        min_size: 1
        desired_capacity: 1
        max_size: 3
        volume_size: 100
        labels: {workload: triton}
        taints: [{key: nvidia.com/gpu, value: "true", effect: NoSchedule}]
    service_accounts:
      - namespace: triton
        name: triton
        attach_policy:
          Version: "2012-10-17"
          Statement:
            - {Effect: Allow, Action: ["s3:GetObject"], Resource: ["arn:aws:s3:::models/triton/*"]}
    kubeconfig: ~/.kube/triton
  register: cluster

- name: Against the local environment (simulator backed by moto)
  tritonfil.eks.eksctl_cluster:
    name: tritonfil-local
    region: us-east-1
    eksctl_path: "{{ playbook_dir }}/../scripts/eksctl-sim"
    endpoint_url: "{{ tritonfil_local.aws_endpoint_url }}"
    config: "{{ lookup('ansible.builtin.file', 'cluster.yaml') | from_yaml }}"

- name: Delete it
  tritonfil.eks.eksctl_cluster:
    name: triton
    region: us-east-1
    state: absent
"""

RETURN = r"""
cluster:
  description:
    - The cluster as C(eksctl get cluster -o json) prints it (EKS DescribeCluster, Go field names); null when absent.
  returned: always
  type: dict
  sample: {"Name": "triton", "Version": "1.33", "Status": "ACTIVE", "Endpoint": "https://ABC.gr7.us-east-1.eks.amazonaws.com"}
nodegroups:
  description: Node groups as C(eksctl get nodegroup -o json) prints them.
  returned: always
  type: list
  elements: dict
  sample:
    - {"Name": "gpu", "Status": "ACTIVE", "MinSize": 1, "DesiredCapacity": 1, "MaxSize": 3}
kubeconfig:
  description: Path of the written kubeconfig (null when none was written).
  returned: always
  type: str
  sample: /root/.kube/triton
actions:
  description: What was done (or, in check mode, would be done), in order.
  returned: always
  type: list
  elements: str
  sample:
    - create node group gpu (g4dn.xlarge, min 1, desired 1, max 3)
    - scale node group system to min 1, desired 2, max 3
commands:
  description: The eksctl command lines that changed something (none in check mode).
  returned: always
  type: list
  elements: list
config:
  description: The ClusterConfig used (rendered or given).
  returned: when state is present
  type: dict
"""

import os
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.tritonfil.eks.plugins.module_utils.eksctl import (
    EKSCTL_COMMON_ARGS,
    YAML_IMPORT_ERROR,
    Eksctl,
    EksctlError,
    Refusal,
    converge,
    current_state,
    render_cluster_config,
    validate_config,
)

NODEGROUP_SPEC = dict(
    name=dict(type="str", required=True),
    instance_type=dict(type="str", required=True),
    min_size=dict(type="int", required=True),
    desired_capacity=dict(type="int", required=True),
    max_size=dict(type="int", required=True),
    volume_size=dict(type="int", default=80),
    ami_family=dict(type="str", default="AmazonLinux2023"),
    labels=dict(type="dict", default={}),
    taints=dict(type="list", elements="dict", default=[]),
    ssh_allow=dict(type="bool", default=False),
    volume_encrypted=dict(type="bool", default=True),
    volume_kms_key_id=dict(type="str"),
    disable_pod_imds=dict(type="bool", default=True),
)
SECURITY_OPTIONS = ("cluster_logging", "endpoint_public_access", "endpoint_private_access", "public_access_cidrs",
                    "secrets_kms_key_arn")  # fmt: skip


def fail(module, exc, **result):
    module.fail_json(msg=exc.message, **exc.details(), **result)


def read_cluster(eksctl, name):
    cluster = eksctl.get_cluster(name)
    nodegroups = eksctl.get_nodegroups(name) if cluster is not None else []
    return cluster, nodegroups


def write_kubeconfig(module, eksctl, name, path):
    """Write the kubeconfig to PATH (0600) through a fresh file; True when its content changed."""
    path = os.path.abspath(path)  # kubeconfig is type=path: ~ and $VARS are expanded already
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kubeconfig-", dir=directory)
    os.close(fd)
    os.unlink(tmp)  # eksctl writes (merges into) the file itself; start from none
    try:
        eksctl.check(eksctl.argv_write_kubeconfig(name, tmp), f"write kubeconfig of {name}")
        with open(tmp, "rb") as f:
            new = f.read()
        old = None
        if os.path.exists(path):
            with open(path, "rb") as f:
                old = f.read()
        if old == new:
            if os.stat(path).st_mode & 0o777 != 0o600:
                os.chmod(path, 0o600)
                return path, True
            return path, False
        os.chmod(tmp, 0o600)
        module.atomic_move(tmp, path)
        os.chmod(path, 0o600)
        return path, True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def ensure_absent(module, eksctl, result):
    p = module.params
    name = p["name"]
    cluster, nodegroups = read_cluster(eksctl, name)
    result.update(cluster=cluster, nodegroups=nodegroups)
    if cluster is None:
        module.exit_json(**result)
    result["diff"] = {"before": current_state(cluster, nodegroups), "after": {}}
    result["actions"].append(f"delete cluster {name} and its node groups")
    result["changed"] = True
    if module.check_mode:
        module.exit_json(**result)
    argv = eksctl.argv_delete_cluster(name, p["wait"], p["wait_timeout"])
    eksctl.check(argv, f"delete cluster {name}")
    result["commands"].append(argv)
    if p["wait"]:
        deadline = time.monotonic() + p["wait_timeout"]
        while eksctl.get_cluster(name) is not None:
            if time.monotonic() > deadline:
                module.fail_json(msg=f"cluster {name} still exists {p['wait_timeout']}s after delete", **result)
            time.sleep(5)
    result.update(cluster=None, nodegroups=[])
    module.exit_json(**result)


def ensure_present(module, eksctl, result):
    p = module.params
    name = p["name"]
    if p["config"]:
        config = p["config"]
    else:
        config = render_cluster_config(
            name, p["region"], p["version"], p["nodegroups"], p["with_oidc"], p["service_accounts"],
            security={k: p[k] for k in SECURITY_OPTIONS}, tags=p["tags"],
        )  # fmt: skip
    problems = validate_config(config, name, p["region"])
    if problems:
        module.fail_json(msg=f"invalid ClusterConfig for cluster {name}: " + "; ".join(problems), config=config)
    result["config"] = config
    try:
        out = converge(
            eksctl,
            config,
            check_mode=module.check_mode,
            wait_timeout=p["wait_timeout"],
            wait=p["wait"],
            commands=result["commands"],
        )
    except Refusal as exc:
        module.fail_json(msg=exc.message, cluster=exc.cluster, nodegroups=exc.nodegroups, config=config)
    for warning in out["warnings"]:
        module.warn(warning)
    result.update(changed=out["changed"], cluster=out["cluster"], nodegroups=out["nodegroups"])
    result["actions"].extend(out["actions"])
    if out["diff"]:
        result["diff"] = out["diff"]
    if module.check_mode:
        kubeconfig = os.path.abspath(p["kubeconfig"]) if p["kubeconfig"] else None
        if kubeconfig and not os.path.exists(kubeconfig):
            result["actions"].append(f"write kubeconfig {kubeconfig}")
            result["changed"] = True
        result["kubeconfig"] = kubeconfig if out["cluster"] else None
        module.exit_json(**result)
    if p["kubeconfig"]:
        path, changed = write_kubeconfig(module, eksctl, name, p["kubeconfig"])
        result["kubeconfig"] = path
        if changed:
            result["actions"].append(f"write kubeconfig {path}")
            result["changed"] = True
    module.exit_json(**result)


def main():
    argument_spec = dict(EKSCTL_COMMON_ARGS)
    argument_spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        config=dict(type="dict"),
        version=dict(type="str"),
        nodegroups=dict(type="list", elements="dict", default=[], options=NODEGROUP_SPEC),
        with_oidc=dict(type="bool", default=True),
        service_accounts=dict(type="list", elements="dict", default=[]),
        cluster_logging=dict(type="list", elements="str", default=["api", "audit", "authenticator"]),
        endpoint_public_access=dict(type="bool", default=True),
        endpoint_private_access=dict(type="bool", default=True),
        public_access_cidrs=dict(type="list", elements="str", default=[]),
        secrets_kms_key_arn=dict(type="str", no_log=False),
        tags=dict(type="dict", default={}),
        kubeconfig=dict(type="path"),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=1800),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[["config", "version"], ["config", "nodegroups"], ["config", "service_accounts"]],
        supports_check_mode=True,
    )
    if YAML_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=str(YAML_IMPORT_ERROR))
    p = module.params
    if p["state"] == "present" and not p["config"] and not p["version"]:
        module.fail_json(msg="state is present but neither version nor config is given")
    for i, sa in enumerate(p["service_accounts"]):
        missing = [k for k in ("namespace", "name", "attach_policy") if not sa.get(k)]
        if missing:
            module.fail_json(msg=f"service_accounts[{i}]: missing {', '.join(missing)}")
    result = dict(changed=False, cluster=None, nodegroups=[], kubeconfig=None, actions=[], commands=[])
    eksctl = Eksctl(p["eksctl_path"], p["region"], p["endpoint_url"], timeout=p["wait_timeout"] + 300)
    try:
        eksctl.find()
        if p["state"] == "absent":
            ensure_absent(module, eksctl, result)
        else:
            ensure_present(module, eksctl, result)
    except EksctlError as exc:
        fail(module, exc, **{k: v for k, v in result.items() if k not in ("changed",)})


if __name__ == "__main__":
    main()
