"""plugins/module_utils/ecr.py: skopeo's exact command lines and error path, the private auth file (removed
also on KeyboardInterrupt and SIGTERM), the ECR login, the copy plan."""

from __future__ import annotations

import base64
import json
import os
import signal
import stat

import pytest

from tritonfil.collection import module_utils

ecr = module_utils("ecr")
EcrMirrorError = ecr.EcrMirrorError
Skopeo = ecr.Skopeo

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
SOURCE = "docker://nvcr.io/nvidia/tritonserver:26.02-py3"
DEST = "docker://123456789012.dkr.ecr.us-east-1.amazonaws.com/tritonserver:26.02-py3"
# What skopeo 1.x prints (level=fatal) for a tag that is not in the repository.
MANIFEST_UNKNOWN = (
    'time="2026-12-01T10:00:00Z" level=fatal msg="Error parsing image name \\"' + DEST + '\\": reading manifest'
    " 26.02-py3 in 123456789012.dkr.ecr.us-east-1.amazonaws.com/tritonserver: manifest unknown: Requested image"
    ' not found"\n'
)
UNAUTHORIZED = (
    'time="2026-12-01T10:00:00Z" level=fatal msg="Error parsing image name \\"' + DEST + '\\": reading manifest'
    " 26.02-py3 in 123456789012.dkr.ecr.us-east-1.amazonaws.com/tritonserver: unauthorized: authentication"
    ' required"\n'
)


class FakeRunner:
    """Records (argv, env) of every call and answers with the queued (rc, stdout, stderr)."""

    def __init__(self, *answers: tuple[int, str, str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[list[str], dict]] = []

    def __call__(self, argv, env):
        self.calls.append((list(argv), dict(env)))
        return self.answers.pop(0)


# -- Skopeo ---------------------------------------------------------------------------------------------------
def test_digest_argv_without_authfile():
    run = FakeRunner((0, DIGEST_A + "\n", ""))
    assert Skopeo(run).digest(SOURCE) == DIGEST_A
    assert run.calls == [
        (
            ["skopeo", "inspect", "--no-tags", "--retry-times=3", "--format={{.Digest}}", "--tls-verify=true", SOURCE],
            {"LC_ALL": "C"},
        )
    ]


def test_digest_argv_with_authfile_and_tls_verify_false():
    run = FakeRunner((0, DIGEST_B + "\n", ""))
    skopeo = Skopeo(run, path="/opt/bin/skopeo", retries=5)
    assert skopeo.digest(DEST, authfile="/tmp/x/auth.json", tls_verify=False) == DIGEST_B
    argv, env = run.calls[0]
    assert argv == [
        "/opt/bin/skopeo", "inspect", "--no-tags", "--retry-times=5", "--format={{.Digest}}",
        "--authfile=/tmp/x/auth.json", "--tls-verify=false", DEST,
    ]  # fmt: skip
    assert env["LC_ALL"] == "C"


def test_digest_of_a_non_registry_reference_has_no_tls_flag():
    run = FakeRunner((0, DIGEST_A, ""))
    Skopeo(run).digest("oci-archive:/tmp/triton.tar")
    assert run.calls[0][0] == [
        "skopeo", "inspect", "--no-tags", "--retry-times=3", "--format={{.Digest}}", "oci-archive:/tmp/triton.tar",
    ]  # fmt: skip


def test_digest_manifest_unknown_is_absent():
    run = FakeRunner((1, "", MANIFEST_UNKNOWN))
    assert Skopeo(run).digest(DEST, authfile="/tmp/x/auth.json") is None


def test_digest_other_error_raises_with_command_stdout_stderr():
    run = FakeRunner((1, "partial", UNAUTHORIZED))
    with pytest.raises(EcrMirrorError) as caught:
        Skopeo(run).digest(DEST, authfile="/tmp/x/auth.json")
    err = caught.value
    assert err.msg == f"cannot read {DEST}: {UNAUTHORIZED.strip()}"
    assert err.command == run.calls[0][0]
    assert err.command[0] == "skopeo"
    assert err.stdout == "partial"
    assert err.stderr == UNAUTHORIZED
    assert err.result() == {"msg": err.msg, "command": err.command, "stdout": "partial", "stderr": UNAUTHORIZED}


def test_digest_missing_credential_helper_is_an_error_not_absent():
    # containers/image runs the credential helper of ~/.docker/config.json ("credsStore": "desktop"); a helper
    # that is not installed fails with Go's exec.ErrNotFound text. The registry was never asked, so this says
    # nothing about the image being there: it must raise, not report the image absent (which the module turns
    # into "source: ... does not exist", or a predicted copy in check mode).
    stderr = (
        'time="2026-12-01T10:00:00Z" level=fatal msg="Error parsing image name \\"' + SOURCE + '\\": getting'
        " username and password: reading credentials for nvcr.io: error getting credentials - err: exec:"
        ' \\"docker-credential-desktop\\": executable file not found in $PATH, out: ``"\n'
    )
    run = FakeRunner((1, "", stderr))
    with pytest.raises(EcrMirrorError) as caught:
        Skopeo(run).digest(SOURCE)
    assert caught.value.msg == f"cannot read {SOURCE}: {stderr.strip()}"
    assert caught.value.stderr == stderr


@pytest.mark.parametrize("stdout", ["", "latest\n", "sha256:abc\n", "sha512:" + "a" * 128])
def test_digest_without_sha256_raises(stdout):
    run = FakeRunner((0, stdout, ""))
    with pytest.raises(EcrMirrorError) as caught:
        Skopeo(run).digest(SOURCE)
    assert caught.value.msg == f"skopeo inspect {SOURCE} printed no sha256 digest: {stdout.strip()!r}"
    assert caught.value.command == run.calls[0][0]
    assert caught.value.stdout == stdout


def test_copy_argv():
    run = FakeRunner((0, "", ""))
    Skopeo(run).copy(SOURCE, DEST, "/tmp/x/auth.json", tls_verify=False)
    assert run.calls == [
        (
            [
                "skopeo", "copy", "--multi-arch=all", "--preserve-digests", "--retry-times=3", "--quiet",
                "--dest-authfile=/tmp/x/auth.json", "--dest-tls-verify=false", SOURCE, DEST,
            ],
            {"LC_ALL": "C"},
        )
    ]  # fmt: skip


def test_copy_failure_raises():
    run = FakeRunner((1, "", "writing blob: denied: not authorized\n"))
    with pytest.raises(EcrMirrorError) as caught:
        Skopeo(run).copy(SOURCE, DEST, "/tmp/x/auth.json")
    assert caught.value.msg == f"copying {SOURCE} to {DEST} failed: writing blob: denied: not authorized"
    assert caught.value.command[-3:] == ["--dest-tls-verify=true", SOURCE, DEST]
    assert caught.value.stderr == "writing blob: denied: not authorized\n"


def test_delete_argv_and_absent_is_fine():
    run = FakeRunner((0, "", ""), (1, "", MANIFEST_UNKNOWN))
    skopeo = Skopeo(run)
    skopeo.delete(DEST, "/tmp/x/auth.json")
    skopeo.delete(DEST, "/tmp/x/auth.json", tls_verify=False)
    assert [c[0] for c in run.calls] == [
        ["skopeo", "delete", "--retry-times=3", "--authfile=/tmp/x/auth.json", "--tls-verify=true", DEST],
        ["skopeo", "delete", "--retry-times=3", "--authfile=/tmp/x/auth.json", "--tls-verify=false", DEST],
    ]
    assert all(env == {"LC_ALL": "C"} for _, env in run.calls)


def test_delete_failure_raises():
    run = FakeRunner((1, "", UNAUTHORIZED))
    with pytest.raises(EcrMirrorError) as caught:
        Skopeo(run).delete(DEST, "/tmp/x/auth.json")
    assert caught.value.msg == f"deleting {DEST} failed: {UNAUTHORIZED.strip()}"
    assert caught.value.stderr == UNAUTHORIZED


def test_version():
    run = FakeRunner((0, "skopeo version 1.18.0\n", ""))
    assert Skopeo(run).version() == "1.18.0"
    assert run.calls == [(["skopeo", "--version"], {"LC_ALL": "C"})]


# -- private_authfile -----------------------------------------------------------------------------------------
HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
TOKEN = base64.b64encode(b"AWS:eyJwYXlsb2FkIjoic2VjcmV0In0").decode()


def _assert_private(path: str) -> None:
    directory = os.path.dirname(path)
    assert os.path.basename(path) == "auth.json"
    assert os.path.basename(directory).startswith("tritonfil-ecr-")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert os.listdir(directory) == ["auth.json"]


def test_private_authfile_content_and_modes():
    with ecr.private_authfile(HOST, TOKEN) as path:
        _assert_private(path)
        with open(path, encoding="utf-8") as f:
            assert json.load(f) == {"auths": {HOST: {"auth": TOKEN}}}
        directory = os.path.dirname(path)
    assert not os.path.exists(directory)


def test_private_authfile_removed_on_keyboard_interrupt():
    seen = []
    with pytest.raises(KeyboardInterrupt), ecr.private_authfile(HOST, TOKEN) as path:
        seen.append(os.path.dirname(path))
        assert os.path.isfile(path)
        raise KeyboardInterrupt
    assert seen and not os.path.exists(seen[0])


def test_private_authfile_removed_on_sigterm_and_handler_restored():
    calls = []

    def mine(signum, frame):
        calls.append(signum)

    before = signal.signal(signal.SIGTERM, mine)
    try:
        seen = []
        with pytest.raises(KeyboardInterrupt) as caught, ecr.private_authfile(HOST, TOKEN) as path:
            seen.append(os.path.dirname(path))
            assert signal.getsignal(signal.SIGTERM) is not mine
            os.kill(os.getpid(), signal.SIGTERM)
            pytest.fail("SIGTERM did not interrupt the body")
        assert str(caught.value) == f"signal {int(signal.SIGTERM)}"
        assert seen and not os.path.exists(seen[0])
        assert signal.getsignal(signal.SIGTERM) is mine
        assert calls == []  # our handler was not called for the SIGTERM private_authfile took
    finally:
        signal.signal(signal.SIGTERM, before)


def test_private_authfile_restores_default_sigterm():
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with ecr.private_authfile(HOST, TOKEN):
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)


# -- ecr_login ------------------------------------------------------------------------------------------------
class FakeEcr:
    def __init__(self, token: str, endpoint: str = f"https://{HOST}") -> None:
        self.token = token
        self.endpoint = endpoint
        self.calls = 0

    def get_authorization_token(self):
        self.calls += 1
        return {
            "authorizationData": [
                {"authorizationToken": self.token, "proxyEndpoint": self.endpoint, "expiresAt": "2026-12-01T22:00:00Z"}
            ]
        }


def test_ecr_login_host_from_proxy_endpoint():
    client = FakeEcr(TOKEN)
    assert ecr.ecr_login(client) == (HOST, TOKEN)
    assert client.calls == 1


def test_ecr_login_host_of_another_partition():
    client = FakeEcr(TOKEN, endpoint="https://123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn")
    assert ecr.ecr_login(client) == ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", TOKEN)


def test_ecr_login_override():
    assert ecr.ecr_login(FakeEcr(TOKEN), "localhost:5000") == ("localhost:5000", TOKEN)


@pytest.mark.parametrize(
    "token",
    [
        "not base64 at all!",
        base64.b64encode(b"USER:password").decode(),
        base64.b64encode(b"AWS").decode(),
        "",
    ],
)
def test_ecr_login_rejects_a_token_that_is_not_aws_basic_auth(token):
    with pytest.raises(EcrMirrorError) as caught:
        ecr.ecr_login(FakeEcr(token))
    assert caught.value.msg == "ecr:GetAuthorizationToken returned a token that is not base64('AWS:...')"
    assert not token or token not in caught.value.msg  # the token is never echoed


# -- plan and source_reference ---------------------------------------------------------------------------------
def test_plan_same_digest_needs_no_copy():
    assert ecr.plan(DIGEST_A, DIGEST_A, True, DEST, "triton_image_tag") is False
    assert ecr.plan(DIGEST_A, DIGEST_A, False, DEST, "triton_image_tag") is False


def test_plan_new_tag_needs_a_copy():
    assert ecr.plan(DIGEST_A, None, True, DEST, "triton_image_tag") is True
    assert ecr.plan(DIGEST_A, None, False, DEST, "triton_image_tag") is True


def test_plan_moved_tag_on_an_immutable_repository_is_refused():
    with pytest.raises(EcrMirrorError) as caught:
        ecr.plan(DIGEST_B, DIGEST_A, True, DEST, "ecr_mirror_tag")
    assert caught.value.msg == (
        f"ecr_mirror_tag: {DEST} holds {DIGEST_A}, the source is now {DIGEST_B}, and the repository's tags are"
        " immutable: mirror it under a new ecr_mirror_tag"
    )
    assert caught.value.command == []


def test_plan_moved_tag_on_a_mutable_repository_is_copied():
    assert ecr.plan(DIGEST_B, DIGEST_A, False, DEST, "ecr_mirror_tag") is True


@pytest.mark.parametrize(
    ("image", "reference"),
    [
        ("nvcr.io/nvidia/tritonserver:26.02-py3", "docker://nvcr.io/nvidia/tritonserver:26.02-py3"),
        ("docker://nvcr.io/nvidia/tritonserver:26.02-py3", "docker://nvcr.io/nvidia/tritonserver:26.02-py3"),
        ("oci-archive:/tmp/triton.tar", "oci-archive:/tmp/triton.tar"),
        ("dir:/tmp/triton", "dir:/tmp/triton"),
        ("localhost:5000/triton:1", "docker://localhost:5000/triton:1"),
        (f"nvcr.io/nvidia/tritonserver@{DIGEST_A}", f"docker://nvcr.io/nvidia/tritonserver@{DIGEST_A}"),
    ],
)
def test_source_reference(image, reference):
    assert ecr.source_reference(image) == reference
