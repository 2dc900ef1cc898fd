"""The Wireshark dissector that ships in the package, and ``gotalk-lab wireshark``.

``plugin_path()`` is the ``gotalk.lua`` file; ``personal_plugin_folder()`` is where
Wireshark looks for a user's Lua plugins (``tshark -G folders`` says so when tshark is
installed, else the documented default); ``install()`` copies the file there. Never
runs Wireshark itself other than to ask it for that folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

PLUGIN_NAME = "gotalk.lua"


def plugin_path() -> Path:
    return Path(__file__).resolve().parent / PLUGIN_NAME


def personal_plugin_folder() -> Path:
    """The personal Lua plugin folder, as ``tshark -G folders`` names it (or its default)."""
    tshark = shutil.which("tshark")
    if tshark is not None:
        try:
            listing = subprocess.run([tshark, "-G", "folders"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            listing = ""
        for line in listing.splitlines():
            label, _, folder = line.partition(":")
            if label.strip() == "Personal Lua Plugins" and folder.strip():
                return Path(folder.strip())
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "Wireshark" / "plugins"
    return Path.home() / ".local" / "lib" / "wireshark" / "plugins"


def install() -> Path:
    """Copy the dissector into the personal plugin folder; returns where it went."""
    folder = personal_plugin_folder()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / PLUGIN_NAME
    shutil.copyfile(plugin_path(), target)
    return target


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "wireshark",
        help="the Gotalk dissector for Wireshark and tshark",
        description="The Lua dissector for Wireshark and tshark that ships with gotalk_lab: display filter "
        "'gotalk', fields gotalk.type, gotalk.id, gotalk.op, gotalk.size, gotalk.payload, gotalk.wait, "
        "gotalk.code, gotalk.version. Found heuristically, or with Decode As: tshark -d tcp.port==N,gotalk.",
        epilog="examples:\n  tshark -X lua_script:$(gotalk-lab wireshark --path) -r capture.pcap -Y gotalk\n"
        "  gotalk-lab wireshark --install   # then restart Wireshark",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--path", action="store_true", help="print the path of the .lua file")
    what.add_argument("--install", action="store_true", help="copy it into your personal Wireshark Lua plugin folder")
    parser.set_defaults(run=cmd_wireshark)


def cmd_wireshark(args: argparse.Namespace) -> int:
    if args.path:
        print(plugin_path())
        return 0
    try:
        target = install()
    except OSError as error:
        print(f"gotalk-lab: cannot install the dissector: {error}", file=sys.stderr)
        return 1
    print(f"installed {target}")
    print("restart Wireshark to load it (tshark loads it on its next run); do not also pass it with -X lua_script:")
    return 0
