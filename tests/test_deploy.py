"""The operators' kit in deploy/: torrc, systemd units and gunicorn, each checked for real.

Debian's tor checks every torrc (``tor --verify-config``) and then runs the
shipped one (paths moved to a temporary directory, its only bridge a closed
port on 127.0.0.1, so it reaches out to nothing) to see both onion services
made and a staff client key loaded. ``systemd-analyze verify`` checks the
units where it exists (containers may lack it). gunicorn starts from the
shipped configuration on 127.0.0.1 and serves a real submission. The units'
MemoryDenyWriteExecute is tried on the portal's own code with the kernel's
equivalent (PR_SET_MDWE).
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from source_fixtures import SECRET, _free_port, browser_envelope, reply_key, token_hex

from portal import cli
from portal.config import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
TORRCS = sorted(DEPLOY.glob("*torrc*"))
SERVICES = sorted(DEPLOY.glob("*.service"))
UNITS = SERVICES + sorted(DEPLOY.glob("*.timer"))
BIN = Path(sys.executable).parent
DEBIAN_TOR_DEFAULTS = Path("/usr/share/tor/tor-service-defaults-torrc")


def need(program: str, package: str) -> str:
    """The program's path; in CI a missing one fails, elsewhere the test is skipped."""
    found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin:/sbin")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{program} is missing in CI: scripts/sysdeps.sh installs {package}")
        pytest.skip(f"{program} is not installed here (apt-get install {package})")
    return found


# Tor -------------------------------------------------------------------------------


def verify_torrc(path: Path) -> subprocess.CompletedProcess[str]:
    defaults = DEBIAN_TOR_DEFAULTS if DEBIAN_TOR_DEFAULTS.exists() else Path("/dev/null")
    return subprocess.run(
        [need("tor", "tor"), "--verify-config", "-f", str(path), "--defaults-torrc",
         str(defaults)], capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_there_is_a_torrc():
    assert TORRCS == [DEPLOY / "torrc"]


@pytest.mark.parametrize("torrc", TORRCS, ids=lambda p: p.name)
def test_every_torrc_is_valid_for_debians_tor(torrc):
    result = verify_torrc(torrc)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration was valid" in result.stdout
    warnings = [line for line in result.stdout.splitlines() if "[warn]" in line]
    assert all("running Tor as root" in line for line in warnings), warnings


def test_a_torrc_with_a_mistake_is_caught(tmp_path):
    bad = tmp_path / "torrc"
    text = (DEPLOY / "torrc").read_text()
    bad.write_text(
        text.replace("HiddenServicePoWDefensesEnabled 1", "HiddenServicePoWDefensesEnabled maybe")
    )
    assert verify_torrc(bad).returncode != 0
    bad.write_text(text + "HiddenServiceProofOfWork 1\n")
    assert verify_torrc(bad).returncode != 0


def torrc_options(path: Path) -> list[tuple[str, str]]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [tuple(line.split(None, 1)) for line in lines if line]  # type: ignore[misc]


def services_of(path: Path) -> dict[str, dict[str, str]]:
    """Each onion service's options, by the port it forwards to."""
    found: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for name, value in torrc_options(path):
        if name == "HiddenServiceDir":
            current = {"dir": value}
        elif name.startswith("HiddenService") and current is not None:
            current[name] = value
            if name == "HiddenServicePort":
                found[value.split()[1]] = current
    return found


def test_the_source_onion_has_pow_and_the_staff_onion_is_separate():
    options = dict(torrc_options(DEPLOY / "torrc"))
    assert options["SafeLogging"] == "1"
    assert options["SocksPort"] == "127.0.0.1:9050"
    services = services_of(DEPLOY / "torrc")
    assert set(services) == {"127.0.0.1:8080", "127.0.0.1:8081"}
    source, staff = services["127.0.0.1:8080"], services["127.0.0.1:8081"]
    assert source["HiddenServicePoWDefensesEnabled"] == "1"
    assert source["HiddenServiceEnableIntroDoSDefense"] == "1"
    assert source["dir"] != staff["dir"]
    assert "portal-staff" in staff["dir"]


def test_the_units_bind_where_tor_forwards():
    binds = {re.search(r"PORTAL_BIND=(\S+)", p.read_text()).group(1) for p in SERVICES  # type: ignore[union-attr]
             if "gunicorn" in p.read_text()}  # fmt: skip
    assert binds == set(services_of(DEPLOY / "torrc"))


@pytest.fixture
def running_tor(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The shipped torrc, its directories moved under tmp_path, with one staff client key."""
    tor, hs, log = need("tor", "tor"), tmp_path / "hs", tmp_path / "tor.log"
    (hs / "portal-staff" / "authorized_clients").mkdir(parents=True, mode=0o700)
    for folder in (hs, hs / "portal-staff", tmp_path):
        folder.chmod(0o700)
    key = cli.onionauth.new_client_key("amina")
    (hs / "portal-staff" / "authorized_clients" / "amina.auth").write_text(key.server_line + "\n")
    text = (DEPLOY / "torrc").read_text().replace("/var/lib/tor/", f"{hs}/")
    text = text.replace("SocksPort 127.0.0.1:9050", f"SocksPort 127.0.0.1:{_free_port()}")
    text = text.replace("Log notice syslog", f"Log info file {log}")
    text += f"DataDirectory {tmp_path / 'data'}\nUseBridges 1\nBridge 127.0.0.1:{_free_port()}\n"
    (tmp_path / "torrc").write_text(text)
    proc = subprocess.Popen([tor, "-f", str(tmp_path / "torrc"), "--defaults-torrc", "/dev/null"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not all((hs / d / "hostname").exists() for d in ("portal-source", "portal-staff")):
            assert proc.poll() is None, log.read_text() if log.exists() else "tor stopped"
            assert time.monotonic() < deadline, "tor made no onion service"
            time.sleep(0.1)
        yield hs, log
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_tor_runs_both_onion_services_and_loads_the_staff_client_key(running_tor):
    hs, log = running_tor
    addresses = {(hs / d / "hostname").read_text().strip() for d in ("portal-source",
                                                                       "portal-staff")}  # fmt: skip
    assert len(addresses) == 2
    assert all(re.fullmatch(r"[a-z2-7]{56}\.onion", a) for a in addresses)
    assert "Loaded a client authorization key file amina.auth" in log.read_text()
    assert "[warn] Client authorization" not in log.read_text()


def test_onion_auth_prints_both_halves_and_refuses_bad_input(capsys):
    onion = "a" * 56
    assert cli.main(["onion-auth", "amina", "--onion", f"{onion}.onion"]) == 0
    out = capsys.readouterr().out
    server = re.search(r"descriptor:x25519:([A-Z2-7]{52})\n", out)
    client = re.search(rf"{onion}:descriptor:x25519:([A-Z2-7]{{52}})\n", out)
    assert server and client and server.group(1) != client.group(1)
    assert "authorized_clients/amina.auth" in out
    assert cli.main(["onion-auth", "../etc/passwd"]) == 1
    assert cli.main(["onion-auth", "amina", "--onion", "example.com"]) == 1
    assert "portal: hint:" in capsys.readouterr().err


# systemd ---------------------------------------------------------------------------


def unit_settings(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            name, value = line.split("=", 1)
            found.setdefault(name.strip(), []).append(value.strip())
    return found


HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
    "PrivateTmp": "yes", "PrivateDevices": "yes", "MemoryDenyWriteExecute": "yes",
    "ReadWritePaths": "/var/lib/portal", "User": "portal", "CapabilityBoundingSet": "",
    "IPAddressDeny": "any", "IPAddressAllow": "localhost", "UMask": "0077",
    "EnvironmentFile": "/etc/portal/portal.env", "LogNamespace": "portal",
}  # fmt: skip


@pytest.mark.parametrize("unit", SERVICES, ids=lambda p: p.name)
def test_every_service_is_hardened_and_writes_only_the_data_directory(unit):
    settings = unit_settings(unit)
    for name, value in HARDENING.items():
        assert settings.get(name) == [value], (unit.name, name)


def test_the_portals_journal_is_kept_in_memory_for_a_day():
    settings = unit_settings(DEPLOY / "journald@portal.conf")
    assert settings["Storage"] == ["volatile"]
    assert settings["MaxRetentionSec"] == ["1day"]
    assert settings["ForwardToSyslog"] == ["no"]


def test_the_timer_starts_the_jobs_service():
    assert {p.name for p in UNITS} == {"portal-source.service", "portal-staff.service",
                                       "portal-jobs.service", "portal-jobs.timer"}  # fmt: skip
    assert unit_settings(DEPLOY / "portal-jobs.service")["ExecStart"] == [
        "/opt/portal/.venv/bin/portal jobs run"
    ]
    assert unit_settings(DEPLOY / "portal-jobs.timer")["OnCalendar"] == ["daily"]


def systemd_verify(tmp_path: Path, units: dict[str, str]) -> list[str]:
    """``systemd-analyze verify`` of ``units`` (name: text); its complaints about them."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (containers may lack systemd)")
    for name, text in units.items():  # the paths of this checkout stand in for /opt/portal
        (tmp_path / name).write_text(text.replace("/opt/portal", str(PROJECT_ROOT)))
    result = subprocess.run([analyze, "verify", *(str(tmp_path / n) for n in units)],
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    output = (result.stdout + result.stderr).splitlines()
    problems = [line for line in output if any(name in line for name in units)]
    return problems if result.returncode == 0 else [*problems, "exit status"]


def test_systemd_analyze_verifies_every_unit(tmp_path):
    assert systemd_verify(tmp_path, {u.name: u.read_text() for u in UNITS}) == []


def test_systemd_analyze_catches_a_mistake(tmp_path):
    text = (DEPLOY / "portal-source.service").read_text()
    assert systemd_verify(tmp_path, {"a.service": text.replace("NoNewPrivileges", "NoNewPriv")})
    assert systemd_verify(tmp_path, {"b.service": text.replace("bin/gunicorn", "bin/missing")})


MDWE_PROBE = """
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(3)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit(4)
except PermissionError:
    pass
import runpy
runpy.run_path(sys.argv[1], run_name="__main__")
"""

MDWE_WORK = """
import argon2, psycopg, nacl.public
from portal import envelope, staffauth
from portal.source import app_from_env
key = nacl.public.PrivateKey.generate()
sealed = envelope.seal(b"x" * 200_000, [bytes(key.public_key)], envelope.SealPath.SERVER)
assert envelope.open_bytes(sealed, [key]) == b"x" * 200_000
assert staffauth.verify_password(staffauth.hasher.hash("a long staff password"),
                                 "a long staff password")
client = app_from_env().test_client()
assert client.get("/report").status_code == 200
print("portal works under MemoryDenyWriteExecute")
"""


def test_the_portal_runs_with_memory_deny_write_execute(tmp_path, team_keys):
    """systemd's MemoryDenyWriteExecute refuses writable+executable memory; PR_SET_MDWE is
    the kernel's own form of it. Python, cffi (PyNaCl, argon2-cffi), cryptography and
    psycopg must all work under it, or the units could not set it."""
    (tmp_path / "work.py").write_text(MDWE_WORK)
    env = {**os.environ, "PORTAL_SECRET_KEY": SECRET, "PORTAL_KEYS": str(team_keys.manifest),
           "PORTAL_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    env.pop("DATABASE_URL", None)
    probe = [sys.executable, "-c", MDWE_PROBE, str(tmp_path / "work.py")]
    result = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=120,
                            check=False)  # fmt: skip
    if result.returncode == 3:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+); systemd's filter is untested")
    assert result.returncode != 4, "writable and executable memory was not refused"
    assert result.returncode == 0, result.stderr
    assert "portal works under MemoryDenyWriteExecute" in result.stdout


# gunicorn --------------------------------------------------------------------------


@pytest.fixture
def gunicorn_source(tmp_path: Path, team_keys) -> Iterator[tuple[str, Path]]:
    """gunicorn from the shipped configuration, serving the source app on 127.0.0.1."""
    port, out = _free_port(), tmp_path / "gunicorn.log"
    env = {**os.environ, "PORTAL_SECRET_KEY": SECRET, "PORTAL_KEYS": str(team_keys.manifest),
           "PORTAL_DATA_DIR": str(tmp_path / "data"), "PORTAL_BIND": f"127.0.0.1:{port}",
           "PORTAL_WORKERS": "1", "PORTAL_THREADS": "2"}  # fmt: skip
    env.pop("DATABASE_URL", None)
    subprocess.run([BIN / "portal", "db", "upgrade"], env=env, check=True, capture_output=True)
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [BIN / "gunicorn", "--config", DEPLOY / "gunicorn.conf.py",
             "portal.source:app_from_env()"],
            env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            try:
                urllib.request.urlopen(url + "/", timeout=5).read()  # noqa: S310 -- 127.0.0.1
                break
            except OSError:
                time.sleep(0.1)
        yield url, out
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_gunicorn_serves_a_submission_from_the_shipped_configuration(
    gunicorn_source, team_keys, tmp_path
):
    url, out = gunicorn_source
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(url + "/report", timeout=10).read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    import base64

    request = urllib.request.Request(  # noqa: S310 -- 127.0.0.1
        url + "/report/sealed", data=browser_envelope(team_keys), method="POST",
        headers={"Content-Type": "application/octet-stream", "X-CSRFToken": csrf,
                 "X-Lookup-Token": token_hex(),
                 "X-Reply-Key": base64.b64encode(reply_key()).decode()},
    )  # fmt: skip
    with opener.open(request, timeout=30) as response:
        assert response.status == 201
        assert len(json.loads(response.read())["fingerprints"]) == 2
    assert len(list((tmp_path / "data" / "envelopes").iterdir())) == 1
    log = out.read_text()
    assert "127.0.0.1" not in log.replace(url, "")  # no client address, no access log
    assert not re.search(r"\d\d:\d\d:\d\d", log), log  # no time of day
    assert "POST" not in log and "/report" not in log
    assert "INFO: alembic" not in log


def test_gunicorn_refuses_to_listen_beyond_loopback(tmp_path, team_keys):
    env = {**os.environ, "PORTAL_SECRET_KEY": SECRET, "PORTAL_KEYS": str(team_keys.manifest),
           "PORTAL_DATA_DIR": str(tmp_path / "data"), "PORTAL_BIND": "0.0.0.0:8080"}  # fmt: skip
    result = subprocess.run(
        [BIN / "gunicorn", "--config", DEPLOY / "gunicorn.conf.py", "--check-config",
         "portal.source:app_from_env()"], env=env, capture_output=True, text=True, timeout=60,
        check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0
    assert "PORTAL_BIND must be 127.0.0.1:PORT" in result.stdout + result.stderr
