"""What deploy/ ships works as written: the systemd unit's environment file is a valid
configuration, and the nginx file of docs/scaling.md is one nginx accepts whole."""

import shutil
import subprocess
from pathlib import Path

from smsproxy.config import Config

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_the_systemd_environment_file_is_a_valid_configuration():
    lines = (DEPLOY / "smsproxy.env").read_text().splitlines()
    environ = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert all(name.startswith("SMSPROXY_") for name in environ)
    config = Config.from_sources({}, environ)
    assert [k.name for k in config.api_key_list] == ["shop", "support"]
    unit = (DEPLOY / "smsproxy.service").read_text()
    assert "EnvironmentFile=/etc/smsproxy/smsproxy.env" in unit
    assert "ExecStart=/opt/smsproxy/bin/smsproxy serve" in unit
    assert "RestartPreventExitStatus=2" in unit  # a configuration error is not retried


def test_the_nginx_file_is_complete(tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is missing: install Debian's nginx (tests/run does)"
    checked = subprocess.run(
        [nginx, "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(DEPLOY / "nginx.conf"),
         "-g", f"pid {tmp_path}/nginx.pid;"],
        capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
