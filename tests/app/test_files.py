"""Private files and folders: modes 0600 and 0700, and no symlink ever followed."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from quartapp import create_app
from quartapp.files import (
    UnsafePathError,
    create_private,
    open_private_dir,
    write_private,
)
from tests.conftest import make_settings

NOBODY = 65534
# Only root can give a file to another user, which is the case the owner check is for:
# root running a command in a folder that a user controls.
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root can make a file owned by another user"
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file elsewhere that a planted symlink points at."""
    path = tmp_path / "elsewhere" / "precious"
    path.parent.mkdir()
    path.write_text("precious\n")
    path.chmod(0o644)
    return path


def test_write_private_creates_a_0600_file_in_a_new_0700_folder(tmp_path: Path) -> None:
    path = tmp_path / "instance" / "initial-admin-password"

    write_private(path, "s3cret\n")

    assert path.read_text() == "s3cret\n"
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def test_write_private_truncates_an_old_file_and_makes_it_0600(tmp_path: Path) -> None:
    path = tmp_path / "initial-admin-password"
    path.write_text("an older and much longer password\n")
    path.chmod(0o644)

    write_private(path, "new\n")

    assert path.read_text() == "new\n"
    assert mode(path) == 0o600


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
def test_write_private_refuses_a_symlink_and_leaves_its_target_alone(
    tmp_path: Path, victim: Path, dangling: bool
) -> None:
    target = tmp_path / "elsewhere" / "not-yet" if dangling else victim
    path = tmp_path / "initial-admin-password"
    path.symlink_to(target)

    with pytest.raises(OSError, match="symbolic links") as caught:
        write_private(path, "s3cret\n")

    assert caught.value.errno == errno.ELOOP
    assert path.is_symlink()
    assert not (tmp_path / "elsewhere" / "not-yet").exists()
    assert victim.read_text() == "precious\n"
    assert mode(victim) == 0o644


@needs_root
def test_write_private_refuses_a_file_of_another_user(tmp_path: Path) -> None:
    path = tmp_path / "initial-admin-password"
    path.write_text("theirs\n")
    os.chown(path, NOBODY, NOBODY)

    with pytest.raises(UnsafePathError, match="belongs to another user"):
        write_private(path, "s3cret\n")

    assert path.read_text() == "theirs\n"


def test_create_private_refuses_a_symlink_planted_at_its_name(
    tmp_path: Path, victim: Path
) -> None:
    (tmp_path / ".secrets.toml.planted.tmp").symlink_to(victim)
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(FileExistsError):
            create_private(".secrets.toml.planted.tmp", dir_fd)
    finally:
        os.close(dir_fd)

    assert victim.read_text() == "precious\n"
    assert mode(victim) == 0o644


@pytest.mark.parametrize("folder_mode", [0o770, 0o707, 0o777, 0o1777], ids=oct)
def test_open_private_dir_refuses_a_folder_others_can_write(
    tmp_path: Path, folder_mode: int
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(folder_mode)

    with pytest.raises(UnsafePathError, match="can be written by other users"):
        open_private_dir(folder)


@pytest.mark.parametrize("folder_mode", [0o700, 0o750, 0o755], ids=oct)
def test_open_private_dir_accepts_a_folder_only_its_owner_writes(
    tmp_path: Path, folder_mode: int
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    folder.chmod(folder_mode)

    os.close(open_private_dir(folder))


@pytest.mark.parametrize("env", ["development", "production"])
async def test_app_creates_the_instance_folder_0700(tmp_path: Path, env: str) -> None:
    settings = make_settings(
        tmp_path,
        ENV=env,
        TESTING=False,
        # Development's default is a SQLite file in the instance folder; production
        # must be given one, and it need not be there.
        DATABASE_URL=None if env == "development" else f"sqlite:///{tmp_path / 'quartapp.db'}",
        TRUSTED_HOSTS=["app.example.com"],
        # Production refuses a schema behind the code; this one has no release step.
        DATABASE_AUTO_UPGRADE=True,
    )
    instance = Path(settings["INSTANCE_PATH"])

    app = create_app(settings)
    async with app.test_app():
        response = await app.test_client().get("/healthz", headers={"Host": "app.example.com"})

    assert response.status_code == 200
    assert instance.is_dir()
    assert mode(instance) == 0o700
