"""Tests for myyoutube.datanode.identity: the node id, the data folder, the advertised address."""

from __future__ import annotations

import pytest

from myyoutube.datanode.identity import (
    NODE_ID_FILE,
    advertised_address,
    load_or_create_node_id,
    node_directory,
)


def test_node_id_is_created_once_and_read_back(tmp_path):
    """The first start writes an id; every later start gets the same one."""
    first = load_or_create_node_id(tmp_path)
    assert len(first) == 32 and load_or_create_node_id(tmp_path) == first
    assert (tmp_path / NODE_ID_FILE).read_text().strip() == first


def test_damaged_node_id_is_refused_not_replaced(tmp_path):
    """A node-id file that holds something else is an error, never silently a new node."""
    (tmp_path / NODE_ID_FILE).write_text("not-an-id\n")
    with pytest.raises(ValueError, match="does not hold a node id"):
        load_or_create_node_id(tmp_path)


def test_first_release_folder_for_our_port_is_kept(tmp_path):
    """DATA_DIR/uploads{PORT} from the first release is this node's folder; otherwise the
    data directory itself is, whatever the port."""
    assert node_directory(tmp_path, 7100) == tmp_path
    (tmp_path / "uploads7100").mkdir()
    assert node_directory(tmp_path, 7100) == tmp_path / "uploads7100"
    assert node_directory(tmp_path, 7101) == tmp_path


@pytest.mark.parametrize(
    ("bind", "port", "advertise", "master", "expected"),
    [
        ("127.0.0.1", 7100, None, "127.0.0.1", "127.0.0.1:7100"),
        ("10.0.0.5", 7100, None, "10.0.0.1", "10.0.0.5:7100"),
        ("0.0.0.0", 7100, "10.0.0.5", "10.0.0.1", "10.0.0.5:7100"),
        ("0.0.0.0", 7100, "dn1.example:9100", "10.0.0.1", "dn1.example:9100"),
        ("0.0.0.0", 7100, "myyoutube_datanode_1", "10.0.0.1", "myyoutube_datanode_1:7100"),  # Compose
        ("::", 7100, "[fd00::5]:7100", "fd00::1", "[fd00::5]:7100"),
    ],
)
def test_advertised_address(bind, port, advertise, master, expected):
    """The bound address unless --advertise says otherwise (with or without a port)."""
    assert advertised_address(bind, port, advertise, master) == expected


@pytest.mark.parametrize(
    ("bind", "advertise", "master", "reason"),
    [
        ("0.0.0.0", None, "10.0.0.1", "wildcard"),
        ("::", None, "127.0.0.1", "wildcard"),
        ("127.0.0.1", None, "10.0.0.1", "loopback"),
        ("0.0.0.0", "localhost", "10.0.0.1", "loopback"),
        # Accepted before, then registered as an address no peer could connect to.
        ("0.0.0.0", "bad host:x", "10.0.0.1", "expected HOST or HOST:PORT"),
        ("0.0.0.0", "dn1.example:99999", "10.0.0.1", "expected HOST or HOST:PORT"),
        ("0.0.0.0", "dn 1.example", "10.0.0.1", "expected HOST or HOST:PORT"),
    ],
)
def test_unreachable_advertisements_are_refused(bind, advertise, master, reason):
    """Two datanodes on 0.0.0.0 once registered as one node; now that is refused up front."""
    with pytest.raises(ValueError, match=reason):
        advertised_address(bind, 7100, advertise, master)
